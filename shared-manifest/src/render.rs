//! The bytes of a manifest's two files (sidecar layout), written without building the whole
//! record as a JSON tree.
//!
//! The split itself is defined by `sidecar::split` on a JSON value (the reference the tests
//! compare against). Building that value for a record of thousands of stages costs several
//! times the record's own memory (a map per stage, a string per key), on every write; here
//! only the top level (without its stages) and one stage at a time become JSON values, and the
//! files are streamed by serde_json's pretty printer (straight into the persister's temp
//! files), so the output is byte for byte what
//! `split` then `to_vec_pretty` would give.

use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::document::pretty_to;
use crate::schema::{CommandRecord, Manifest};
use crate::sidecar::{PEER_COMMAND_KEYS, PEER_KEYS};

/// Which of the two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// `manifest.json`: the peer schema's keys.
    Main,
    /// `manifest.ext.json`: the join keys, then every other key.
    Ext,
}

/// Top-level keys of the sidecar that repeat the main file's (see `sidecar.rs`).
const JOIN_KEYS: &[&str] = &["run_id", "updated_at"];
/// Per-stage keys of the sidecar that repeat the main file's.
const COMMAND_JOIN_KEYS: &[&str] = &["index", "id"];

/// `manifest.json` (`Part::Main`) or `manifest.ext.json` (`Part::Ext`) of `m`, pretty, with a
/// trailing newline, streamed to `out`.
///
/// Takes `m` mutably only to set its stages aside while its top level becomes a JSON value;
/// it is unchanged on return.
pub(crate) fn write_part(
    m: &mut Manifest,
    part: Part,
    out: &mut dyn std::io::Write,
) -> Result<(), serde_json::Error> {
    let commands = std::mem::take(&mut m.commands);
    let top = serde_json::to_value(&*m);
    m.commands = commands;
    let Value::Object(top) = top? else {
        return Err(serde_json::Error::custom(
            "a manifest serializes to an object",
        ));
    };
    pretty_to(
        out,
        &View {
            top: &top,
            commands: &m.commands,
            part,
        },
    )
}

/// One of the two files: the top level's keys of that part, with the stages in the place of
/// the (empty) `commands` key.
struct View<'a> {
    top: &'a Map<String, Value>,
    commands: &'a [CommandRecord],
    part: Part,
}

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let stages = Stages {
            commands: self.commands,
            part: self.part,
        };
        match self.part {
            Part::Main => {
                for (k, v) in self.top {
                    if k == "commands" {
                        map.serialize_entry(k, &stages)?;
                    } else if PEER_KEYS.contains(&k.as_str()) {
                        map.serialize_entry(k, v)?;
                    }
                }
            }
            Part::Ext => {
                for key in JOIN_KEYS {
                    if let Some(v) = self.top.get(*key) {
                        map.serialize_entry(key, v)?;
                    }
                }
                for (k, v) in self.top {
                    if k != "commands" && !PEER_KEYS.contains(&k.as_str()) {
                        map.serialize_entry(k, v)?;
                    }
                }
                map.serialize_entry("commands", &stages)?;
            }
        }
        map.end()
    }
}

/// The stages of one part, each turned into a JSON value only while it is written.
struct Stages<'a> {
    commands: &'a [CommandRecord],
    part: Part,
}

impl Serialize for Stages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.commands.len()))?;
        for c in self.commands {
            let Value::Object(stage) = serde_json::to_value(c).map_err(S::Error::custom)? else {
                return Err(S::Error::custom("a stage serializes to an object"));
            };
            seq.serialize_element(&StagePart {
                stage: &stage,
                part: self.part,
            })?;
        }
        seq.end()
    }
}

struct StagePart<'a> {
    stage: &'a Map<String, Value>,
    part: Part,
}

impl Serialize for StagePart<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let peer = |k: &str| PEER_COMMAND_KEYS.contains(&k);
        match self.part {
            Part::Main => {
                for (k, v) in self.stage.iter().filter(|(k, _)| peer(k)) {
                    map.serialize_entry(k, v)?;
                }
            }
            Part::Ext => {
                for key in COMMAND_JOIN_KEYS {
                    if let Some(v) = self.stage.get(*key) {
                        map.serialize_entry(key, v)?;
                    }
                }
                for (k, v) in self.stage.iter().filter(|(k, _)| !peer(k)) {
                    map.serialize_entry(k, v)?;
                }
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::pretty;
    use crate::sidecar::split;

    /// The split of `sidecar::split`, pretty: the reference.
    fn reference(m: &Manifest) -> (Vec<u8>, Vec<u8>) {
        let (main, ext) = split(serde_json::to_value(m).expect("value"));
        (pretty(&main).expect("main"), pretty(&ext).expect("ext"))
    }

    #[test]
    fn streamed_files_are_byte_for_byte_the_reference_split() {
        let mut m: Manifest =
            serde_json::from_value(crate::sidecar::tests::full()).expect("manifest");
        let before = m.clone();
        let (mut main, mut ext) = (Vec::new(), Vec::new());
        write_part(&mut m, Part::Main, &mut main).expect("main");
        write_part(&mut m, Part::Ext, &mut ext).expect("ext");
        assert_eq!(m, before, "the manifest is unchanged");
        let (want_main, want_ext) = reference(&m);
        assert_eq!(
            String::from_utf8(main).expect("utf8"),
            String::from_utf8(want_main).expect("utf8")
        );
        assert_eq!(
            String::from_utf8(ext).expect("utf8"),
            String::from_utf8(want_ext).expect("utf8")
        );
    }
}

//! A message's wire JSON as a reply sends it: whole in memory (made once and shared by every
//! reply that sends it), or, for a long text whose journal line may be sent as it lies, the
//! fields before the text made in memory and the rest sent from the journal file by the kernel,
//! never read into memory.

use crate::journal::LyingJson;
use crate::message::WireJson;

pub(crate) enum SentJson {
    Whole(WireJson),
    Lying(LyingJson),
}

impl SentJson {
    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            SentJson::Whole(json) => json.len(),
            SentJson::Lying(lying) => lying.len(),
        }
    }
}

impl From<WireJson> for SentJson {
    fn from(json: WireJson) -> SentJson {
        SentJson::Whole(json)
    }
}

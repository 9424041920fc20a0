//! A hash set of ids keyed by text the caller keeps (in the arena): eight bytes a slot where a
//! `HashMap<Box<str>, u32>` would spend a boxed copy of every key. A slot keeps 32 bits of its
//! key's hash so growing the table never reads the keys again.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

#[derive(Clone, Copy)]
struct Slot {
    hash: u32,
    id: u32,
}

#[derive(Default)]
pub struct TextTable {
    slots: HashTable<Slot>,
}

fn hash32(text: &str) -> u32 {
    (FxBuildHasher.hash_one(text) >> 32) as u32
}

/// The table's hash of a slot: the 32 stored bits spread over 64 (the table takes its probe
/// position from the low bits and a tag from the top seven).
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Where a text not in the table would go: its hash, kept for [`TextTable::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Absent {
    hash: u32,
}

impl TextTable {
    /// The id whose text (`text_of(id)`, compared as bytes: no UTF-8 check per probe) is
    /// `text`, or where to insert one.
    pub fn find<'t>(&self, text: &str, text_of: impl Fn(u32) -> &'t [u8]) -> Result<u32, Absent> {
        let hash = hash32(text);
        self.slots
            .find(spread(hash), |slot| {
                slot.hash == hash && text_of(slot.id) == text.as_bytes()
            })
            .map(|slot| slot.id)
            .ok_or(Absent { hash })
    }

    pub fn get<'t>(&self, text: &str, text_of: impl Fn(u32) -> &'t [u8]) -> Option<u32> {
        self.find(text, text_of).ok()
    }

    /// Files `id` under the text [`TextTable::find`] did not find.
    pub fn insert(&mut self, absent: Absent, id: u32) {
        let hash = absent.hash;
        self.slots
            .insert_unique(spread(hash), Slot { hash, id }, |slot| spread(slot.hash));
    }

    pub fn shrink_to_fit(&mut self) {
        self.slots.shrink_to_fit(|slot| spread(slot.hash));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_by_their_text() {
        let texts = ["evil.com", "a.evil.com", "", "fakess123.nu"];
        let text_of = |id: u32| texts[id as usize].as_bytes();
        let mut table = TextTable::default();
        for (i, text) in texts.iter().enumerate() {
            let absent = table.find(text, text_of).unwrap_err();
            table.insert(absent, i as u32);
        }
        assert_eq!(table.find("evil.com", text_of), Ok(0));
        assert_eq!(table.get("fakess123.nu", text_of), Some(3));
        assert_eq!(table.get("", text_of), Some(2));
        assert_eq!(table.get("b.evil.com", text_of), None);
    }
}

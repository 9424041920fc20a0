//! A record's context (key → value) and tags, written into the arena: the pair count, then
//! per pair the key's number and the value, then the tag count and the tags. Feeds repeat a
//! few keys (`threat`, `first_seen`, ...) millions of times, so keys are numbered once.

use rustc_hash::FxHashMap;

use super::arena::{Arena, IndexFull, Reader};

/// A record without context and tags writes nothing and keeps this offset.
pub const NO_CONTEXT: u32 = u32::MAX;

/// The context keys of one index, numbered in order of first use.
#[derive(Default)]
pub struct ContextKeys {
    names: Vec<Box<str>>,
    ids: FxHashMap<Box<str>, u32>,
}

impl ContextKeys {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// Writes `context` and `tags`; their offset, or [`NO_CONTEXT`] when both are empty.
    pub fn write<'v>(
        &mut self,
        arena: &mut Arena,
        context: impl ExactSizeIterator<Item = (&'v str, &'v str)>,
        tags: impl ExactSizeIterator<Item = &'v str>,
    ) -> Result<u32, IndexFull> {
        if context.len() == 0 && tags.len() == 0 {
            return Ok(NO_CONTEXT);
        }
        let at = arena.offset()?;
        arena.write_varint(context.len() as u64);
        for (name, value) in context {
            arena.write_varint(u64::from(self.id(name)));
            arena.write_str(value);
        }
        arena.write_varint(tags.len() as u64);
        for tag in tags {
            arena.write_str(tag);
        }
        Ok(at)
    }

    pub fn read<'a>(&'a self, arena: &'a Arena, at: u32) -> Context<'a> {
        Context {
            keys: &self.names,
            reader: (at != NO_CONTEXT).then(|| arena.reader(at)),
        }
    }
}

/// One record's context, read from the arena as it is iterated.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    keys: &'a [Box<str>],
    reader: Option<Reader<'a>>,
}

impl<'a> Context<'a> {
    /// No context (what a match from a test or an empty record has).
    pub const EMPTY: Context<'static> = Context {
        keys: &[],
        reader: None,
    };

    /// (key, value) pairs in the order the feed gave them.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        let keys = self.keys;
        let mut reader = self.reader;
        let count = reader.as_mut().map_or(0, |r| r.varint());
        (0..count).map(move |_| {
            let reader = reader.as_mut().expect("a count was read");
            let key = &keys[reader.varint() as usize];
            (&**key, reader.str())
        })
    }

    pub fn tags(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let mut reader = self.reader;
        if let Some(reader) = reader.as_mut() {
            for _ in 0..reader.varint() {
                reader.varint();
                reader.str();
            }
        }
        let count = reader.as_mut().map_or(0, |r| r.varint());
        (0..count).map(move |_| reader.as_mut().expect("a count was read").str())
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for Context<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter()) && self.tags().eq(other.tags())
    }
}

impl Eq for Context<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_and_tags_read_back_with_shared_keys() {
        let (mut arena, mut keys) = (Arena::default(), ContextKeys::default());
        let first = keys
            .write(
                &mut arena,
                [("threat", "Trojan"), ("first_seen", "2024-01-01")].into_iter(),
                ["apt", "c2"].into_iter(),
            )
            .unwrap();
        let second = keys
            .write(&mut arena, [("threat", "Worm")].into_iter(), [].into_iter())
            .unwrap();
        let none = keys
            .write(&mut arena, [].into_iter(), [].into_iter())
            .unwrap();
        assert_eq!(keys.names.len(), 2, "`threat` is numbered once");
        let first = keys.read(&arena, first);
        assert_eq!(
            first.iter().collect::<Vec<_>>(),
            [("threat", "Trojan"), ("first_seen", "2024-01-01")]
        );
        assert_eq!(first.tags().collect::<Vec<_>>(), ["apt", "c2"]);
        let second = keys.read(&arena, second);
        assert_eq!(second.iter().collect::<Vec<_>>(), [("threat", "Worm")]);
        assert_eq!(second.tags().count(), 0);
        assert_eq!(none, NO_CONTEXT);
        assert!(keys.read(&arena, none).is_empty());
        assert_eq!(keys.read(&arena, none), Context::EMPTY);
    }
}

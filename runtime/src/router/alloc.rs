//! A small cache of large blocks in front of the process allocator.
//!
//! Every transfer allocates and frees buffers of about 1 MiB: upload chunks here, and
//! every READ reply inside `nfs-rs` (which allocates a fresh buffer per reply and has no
//! read-into-buffer call). Two allocator behaviours are both wrong for that:
//!
//! - keep freed memory for a while (mimalloc's default purge delay): blocks are reused,
//!   but how much stays resident depends on timing and threads, and 32 streams pushed
//!   RSS past 100 MiB for 25 MiB live;
//! - return freed memory at once (`MIMALLOC_PURGE_DELAY=0`, what the task definition
//!   sets): RSS follows live memory, but every new buffer is 256 fresh pages, each a
//!   page fault and a zeroing, which cost a third of the sequential throughput.
//!
//! [`Recycling`] keeps freed blocks between 256 KiB and 4 MiB (rounded up to 64 KiB
//! classes) and hands them out again for the same class, as long as the large blocks in
//! use and cached together stay within a limit (the router's transfer budget plus its
//! NFS connections' buffers). A busy router therefore caches nothing and holds only what
//! it uses; a router with room keeps its buffers warm. All other sizes go straight to the
//! inner allocator (docs/benchmarks.md#router).
//!
//! The only module of the workspace allowed `unsafe`: an allocator cannot be written
//! without it. Every block says why it is sound, and a property test checks contents.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Block sizes are rounded up to multiples of this, so a 1 MiB reply plus its RPC header
/// and the next one of a slightly different length share a class.
const GRAIN: usize = 64 << 10;
/// Below this the inner allocator keeps its own pages warm; caching gains nothing.
const SMALLEST: usize = 256 << 10;
/// NFS replies are at most 4 MiB plus headers (`nfs-rs` rejects larger ones).
const LARGEST: usize = (4 << 20) + GRAIN;
/// Cached blocks are allocated with this alignment; requests needing more bypass the
/// cache.
const ALIGN: usize = 16;
const SLOTS: usize = 32;

/// A [`GlobalAlloc`] that recycles large blocks, keeping at most `limit` bytes of them,
/// in use and cached together.
#[derive(Debug)]
pub struct Recycling<A> {
    inner: A,
    cache: Mutex<Cache>,
}

#[derive(Debug)]
struct Cache {
    blocks: [Block; SLOTS],
    len: usize,
    /// Bytes of the cached blocks.
    bytes: usize,
    /// Bytes of large blocks handed out and not yet freed.
    live: usize,
    limit: usize,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    ptr: *mut u8,
    size: usize,
}

const EMPTY: Block = Block {
    ptr: std::ptr::null_mut(),
    size: 0,
};

// SAFETY: the cache only stores pointers to blocks nobody else references (they were
// freed); whichever thread takes one out owns it, as with any allocation.
unsafe impl Send for Cache {}

impl<A> Recycling<A> {
    pub const fn new(inner: A, limit: usize) -> Self {
        Recycling {
            inner,
            cache: Mutex::new(Cache {
                blocks: [EMPTY; SLOTS],
                len: 0,
                bytes: 0,
                live: 0,
                limit,
            }),
        }
    }

    /// Changes the limit (the router sets it from its transfer budget at start).
    pub fn set_limit(&self, limit: usize) {
        self.lock().limit = limit;
    }

    /// Bytes held in the cache now.
    pub fn cached_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // Nothing can panic while the lock is held; a poisoned cache is still consistent.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a block of `size` as handed out and returns a cached one of exactly that
    /// size if there is one, the most recently freed first (the one most likely still in
    /// the CPU's caches). On a miss the cache shrinks so that blocks in use and cached
    /// stay within the limit; what leaves it goes to `free`, outside the lock.
    fn take(&self, size: usize, free: impl Fn(Block)) -> Option<*mut u8> {
        let mut evicted = Evicted::default();
        {
            let mut cache = self.lock();
            cache.live += size;
            if let Some(at) = cache.blocks[..cache.len]
                .iter()
                .rposition(|b| b.size == size)
            {
                return Some(cache.pop(at).ptr);
            }
            cache.trim(0, &mut evicted);
        }
        evicted.free(free);
        None
    }

    /// Counts a block as freed and keeps it when blocks in use and cached stay within the
    /// limit, handing back the oldest cached ones to make room (a cache full of a class
    /// nobody uses any more must not stay full of it). Whatever is not kept goes to
    /// `free`, outside the lock.
    fn keep(&self, block: Block, free: impl Fn(Block)) {
        let mut evicted = Evicted::default();
        {
            let mut cache = self.lock();
            cache.live = cache.live.saturating_sub(block.size);
            cache.trim(block.size, &mut evicted);
            if cache.len < SLOTS && cache.live + cache.bytes + block.size <= cache.limit {
                let len = cache.len;
                cache.blocks[len] = block;
                cache.len += 1;
                cache.bytes += block.size;
            } else {
                evicted.push(block);
            }
        }
        evicted.free(free);
    }
}

impl Cache {
    /// Hands out the oldest cached blocks until `extra` more bytes fit in a free slot.
    fn trim(&mut self, extra: usize, evicted: &mut Evicted) {
        while self.len > 0 && (self.len == SLOTS || self.live + self.bytes + extra > self.limit) {
            evicted.push(self.pop(0));
        }
    }

    fn pop(&mut self, at: usize) -> Block {
        let block = self.blocks[at];
        self.blocks.copy_within(at + 1..self.len, at);
        self.len -= 1;
        self.bytes -= block.size;
        block
    }
}

/// Blocks to free once the lock is released (the inner allocator may take its time).
struct Evicted {
    blocks: [Block; SLOTS + 1],
    len: usize,
}

impl Default for Evicted {
    fn default() -> Self {
        Evicted {
            blocks: [EMPTY; SLOTS + 1],
            len: 0,
        }
    }
}

impl Evicted {
    fn push(&mut self, block: Block) {
        self.blocks[self.len] = block;
        self.len += 1;
    }

    fn free(&self, free: impl Fn(Block)) {
        self.blocks[..self.len].iter().copied().for_each(free);
    }
}

impl<A: GlobalAlloc> Recycling<A> {
    /// A block of class `size`, cached or fresh; `zeroed` is how many bytes must read
    /// as zero.
    fn large(&self, size: usize, zeroed: Option<usize>) -> *mut u8 {
        if let Some(ptr) = self.take(size, |b| self.free(b)) {
            if let Some(n) = zeroed {
                // SAFETY: the block holds `size` bytes, at least the `n` asked for.
                unsafe { ptr.write_bytes(0, n) };
            }
            return ptr;
        }
        // SAFETY: a class is a non-zero multiple of 64 KiB and ALIGN a power of two.
        let ptr = unsafe {
            match zeroed {
                // The inner allocator knows when fresh memory is already zero.
                Some(_) => self.inner.alloc_zeroed(block_layout(size)),
                None => self.inner.alloc(block_layout(size)),
            }
        };
        if ptr.is_null() {
            self.lock().live -= size;
        }
        ptr
    }

    /// Returns a large block to `inner`.
    fn free(&self, block: Block) {
        // SAFETY: large blocks are allocated by `inner` with their class's layout (see
        // `large`), and one leaving the cache or not let into it is referenced by nobody.
        unsafe { self.inner.dealloc(block.ptr, block_layout(block.size)) }
    }
}

/// The size a block of `layout` really has, when it is one the cache handles.
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size();
    if layout.align() > ALIGN || !(SMALLEST..=LARGEST).contains(&size) {
        return None;
    }
    Some(size.div_ceil(GRAIN) * GRAIN)
}

/// The layout cached blocks are allocated with.
fn block_layout(size: usize) -> Layout {
    // `size` is a class (a multiple of GRAIN up to LARGEST) and ALIGN a power of two, so
    // this cannot fail.
    match Layout::from_size_align(size, ALIGN) {
        Ok(layout) => layout,
        Err(_) => unreachable!("block sizes are small multiples of 64 KiB"),
    }
}

// SAFETY: every block handed out is either fresh from `inner` with a layout at least as
// large and as aligned as asked, or one that was allocated that way and freed by its
// owner. Blocks are returned to `inner` with the layout they were allocated with.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Recycling<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(size) => self.large(size, None),
            // SAFETY: forwarded as the caller gave it.
            None => unsafe { self.inner.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(size) => self.large(size, Some(layout.size())),
            // SAFETY: forwarded as the caller gave it.
            None => unsafe { self.inner.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class(layout) {
            Some(size) => self.keep(Block { ptr, size }, |b| self.free(b)),
            // SAFETY: forwarded as the caller gave it.
            None => unsafe { self.inner.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with this alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            // SAFETY: neither block is ours; forwarded as given.
            (None, None) => unsafe { self.inner.realloc(ptr, layout, new_size) },
            // The block is already big enough.
            (Some(old), Some(new)) if old == new => ptr,
            _ => {
                // SAFETY: `new_layout` is valid (above); the old block holds
                // `layout.size()` bytes and the new one `new_size`, and they are
                // distinct allocations.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr.copy_to_nonoverlapping(moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::System;

    use proptest::prelude::*;

    use super::*;

    const MIB: usize = 1 << 20;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    #[test]
    fn a_freed_transfer_buffer_is_handed_out_again() {
        let a = Recycling::new(System, 8 * MIB);
        unsafe {
            let first = a.alloc(layout(MIB + 120));
            a.dealloc(first, layout(MIB + 120));
            assert_eq!(a.cached_bytes(), MIB + GRAIN);
            // A reply of another length in the same class gets the same block.
            let second = a.alloc(layout(MIB + 4000));
            assert_eq!(second, first);
            assert_eq!(a.cached_bytes(), 0);
            a.dealloc(second, layout(MIB + 4000));
        }
    }

    #[test]
    fn small_odd_and_huge_blocks_bypass_the_cache() {
        let a = Recycling::new(System, 64 * MIB);
        for l in [
            layout(4096),
            layout(8 * MIB),
            Layout::from_size_align(MIB, 4096).unwrap(),
        ] {
            unsafe {
                let p = a.alloc(l);
                assert!(!p.is_null());
                a.dealloc(p, l);
            }
            assert_eq!(a.cached_bytes(), 0, "{l:?} was cached");
        }
    }

    #[test]
    fn the_cache_keeps_the_newest_blocks_within_its_limit() {
        let a = Recycling::new(System, 3 * MIB);
        unsafe {
            let blocks: Vec<_> = (0..5).map(|_| a.alloc(layout(MIB))).collect();
            for &p in &blocks {
                a.dealloc(p, layout(MIB));
            }
            assert_eq!(a.cached_bytes(), 3 * MIB);
            // Blocks of a class nobody uses any more give way to the current one.
            let other = a.alloc(layout(2 * MIB));
            a.dealloc(other, layout(2 * MIB));
            assert_eq!(a.cached_bytes(), 3 * MIB);
            assert_eq!(a.alloc(layout(2 * MIB)), other);
            a.dealloc(other, layout(2 * MIB));
        }
    }

    #[test]
    fn a_busy_process_caches_nothing() {
        let a = Recycling::new(System, 4 * MIB);
        unsafe {
            let blocks: Vec<_> = (0..6).map(|_| a.alloc(layout(MIB))).collect();
            // Five blocks still in use: one more cached would exceed the limit.
            a.dealloc(blocks[0], layout(MIB));
            assert_eq!(a.cached_bytes(), 0);
            for &p in &blocks[1..5] {
                a.dealloc(p, layout(MIB));
            }
            // One in use, three cached.
            assert_eq!(a.cached_bytes(), 3 * MIB);
            // Use grows again: the cache gives way.
            let more: Vec<_> = (0..3).map(|_| a.alloc(layout(2 * MIB))).collect();
            assert_eq!(a.cached_bytes(), 0);
            for p in more {
                a.dealloc(p, layout(2 * MIB));
            }
            a.dealloc(blocks[5], layout(MIB));
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_recycled() {
        let a = Recycling::new(System, 8 * MIB);
        unsafe {
            let p = a.alloc(layout(MIB));
            p.write_bytes(0xa5, MIB);
            a.dealloc(p, layout(MIB));
            let q = a.alloc_zeroed(layout(MIB));
            assert_eq!(q, p);
            assert!(std::slice::from_raw_parts(q, MIB).iter().all(|&b| b == 0));
            a.dealloc(q, layout(MIB));
        }
    }

    proptest! {
        /// Random allocations, growths, shrinks and frees across the cache's edges: every
        /// live block keeps its contents (no block is handed out twice, none is freed
        /// early), and the cache holds nothing or keeps large blocks in use and cached
        /// within the limit.
        #[test]
        fn blocks_keep_their_contents(ops in proptest::collection::vec(
            (0usize..4, prop_oneof![1usize..SMALLEST, SMALLEST..LARGEST + GRAIN, Just(MIB)], any::<u8>()),
            1..200,
        )) {
            let a = Recycling::new(System, 4 * MIB);
            let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
            let check = |p: *mut u8, size: usize, fill: u8| unsafe {
                // The first and last bytes are enough to catch a shared or lost block.
                *p == fill && *p.add(size - 1) == fill && *p.add(size / 2) == fill
            };
            unsafe {
                for (op, size, fill) in ops {
                    match op {
                        0 | 1 if live.len() < 24 => {
                            let p = if op == 0 { a.alloc(layout(size)) } else { a.alloc_zeroed(layout(size)) };
                            prop_assert!(!p.is_null());
                            if op == 1 {
                                prop_assert!(check(p, size, 0));
                            }
                            p.write_bytes(fill, size);
                            live.push((p, size, fill));
                        }
                        2 if !live.is_empty() => {
                            let (p, old, f) = live.swap_remove(fill as usize % live.len());
                            prop_assert!(check(p, old, f));
                            let q = a.realloc(p, layout(old), size);
                            prop_assert!(!q.is_null());
                            let kept = old.min(size);
                            prop_assert!(*q == f && *q.add(kept - 1) == f);
                            q.write_bytes(fill, size);
                            live.push((q, size, fill));
                        }
                        _ if !live.is_empty() => {
                            let (p, size, f) = live.swap_remove(fill as usize % live.len());
                            prop_assert!(check(p, size, f));
                            a.dealloc(p, layout(size));
                        }
                        _ => {}
                    }
                    for &(p, size, f) in &live {
                        prop_assert!(check(p, size, f));
                    }
                    let in_use: usize = live.iter().filter_map(|&(_, size, _)| class(layout(size))).sum();
                    let cached = a.cached_bytes();
                    prop_assert!(cached == 0 || in_use + cached <= 4 * MIB, "{in_use} in use, {cached} cached");
                }
                for (p, size, _) in live {
                    a.dealloc(p, layout(size));
                }
            }
        }
    }
}

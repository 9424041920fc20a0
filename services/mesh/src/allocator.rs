//! How the services' allocator (mimalloc, declared in each binary) treats memory it freed.
//!
//! By default mimalloc hands pages that stayed free for a second back to the kernel
//! (`madvise(MADV_DONTNEED)`). A streaming service frees in bulk what it allocated a few
//! seconds before — the collector drops a batch's events only once the store holds them — so
//! under load it gave back and faulted in again hundreds of regions a second, and each fault
//! has the kernel zero a fresh page: under `xdr-bench collector` that was about 400
//! `madvise` calls a second and an eighth of the collector's samples in `clear_page_erms`.
//! Such a service keeps what it freed instead: its resident memory stays at its high-water
//! mark, which the service's own budgets bound.

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (`include/mimalloc.h`); the Rust
/// bindings name no constant for it. A test pins it by the option's distinctive default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc keep the memory it frees for reuse, never purging it, unless the operator
/// chose otherwise with mimalloc's own `MIMALLOC_PURGE_DELAY` (milliseconds; `-1` never).
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one of mimalloc's process-wide options, which it reads atomically on each
    // purge; any value is valid for this one (negative: never purge).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge_delay() -> std::ffi::c_long {
        // SAFETY: reads a process-wide option.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(
            purge_delay(),
            1000,
            "mimalloc v3's purge delay defaults to 1000 ms: is option 15 still purge_delay?"
        );
        keep_freed_memory();
        assert_eq!(purge_delay(), -1);
    }
}

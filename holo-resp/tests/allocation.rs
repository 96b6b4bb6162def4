//! A declared length is never trusted for allocation: a peer that announces a huge bulk or
//! aggregate and sends little makes the decoder allocate nothing near the announced size.
//!
//! The counting allocator is the one piece of `unsafe` in the workspace: a `GlobalAlloc`
//! impl cannot be written without it. It only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use holo_resp::{Limits, decode};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test, so no other test's allocations (the harness runs tests on threads) are counted.
#[test]
fn announced_sizes_allocate_nothing_until_the_bytes_arrive() {
    let limits = Limits::default();
    let inputs: [&[u8]; 5] = [
        b"$536870912\r\nabc",
        b"*1048576\r\n:1\r\n:2\r\n",
        b"%1048576\r\n:1\r\n",
        b"~1048576\r\n*1048576\r\n*1048576\r\n",
        b"*3\r\n$536870912\r\nab",
    ];
    // Warm up anything lazily allocated by the test harness before measuring.
    let _ = decode(b"+OK\r\n", &limits);
    LARGEST.store(0, Ordering::Relaxed);
    for input in inputs {
        assert_eq!(decode(input, &limits), Ok(None));
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 4096,
        "the decoder allocated {largest} bytes for a frame that is not there"
    );

    // Nested arrays that each announce a million elements, then enough bytes for one level:
    // the check pass sees the frame is incomplete and allocates nothing.
    let mut input = b"*1000000\r\n".repeat(3);
    input.extend(b"_\r\n".repeat(1_000_000));
    LARGEST.store(0, Ordering::Relaxed);
    assert_eq!(decode(&input, &limits), Ok(None));
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < 4096, "the check pass allocated {largest} bytes");
}

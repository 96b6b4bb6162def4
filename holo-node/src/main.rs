//! The `holo-node` binary.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    eprintln!(
        "holo-node ({} allocator): the server is not built yet; see the open holo-node issue",
        holo_node::allocator_name()
    );
    std::process::exit(2);
}

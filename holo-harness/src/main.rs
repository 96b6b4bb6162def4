//! The `holo-harness` binary. Its commands arrive with the holo-harness issue.

fn main() {
    eprintln!("holo-harness: no commands yet; see the open holo-harness issue");
    std::process::exit(2);
}

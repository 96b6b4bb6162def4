//! The `holoctl` admin CLI. Its commands arrive with the holo-node issue.

fn main() {
    eprintln!("holoctl: no commands yet; see the open holo-node issue");
    std::process::exit(2);
}

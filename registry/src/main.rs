//! The `registry` binary: everything happens in the library's entry point.

use std::process::ExitCode;

fn main() -> ExitCode {
    registry::main()
}

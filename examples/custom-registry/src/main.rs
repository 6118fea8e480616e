//! The whole of a downstream registry binary: the registry's entry point,
//! with one more extension crate linked in.

use std::process::ExitCode;

// Naming the crate keeps the linker from dropping it, and with it the
// extension's registrations.
use hello_extension as _;

fn main() -> ExitCode {
    registry::main()
}

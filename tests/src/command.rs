//! Running external programs with errors that show what failed: the tools
//! that the tests need, and the `registry` binary's own commands.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::process::{Command, Output};

/// An external program that a test needs, with the Debian package that
/// provides it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The program name, looked up on `PATH`.
    pub program: &'static str,
    /// The Debian package that installs the program.
    pub package: &'static str,
}

/// skopeo, which copies images between OCI layouts and registries.
pub const SKOPEO: Tool = Tool {
    program: "skopeo",
    package: "skopeo",
};

/// umoci, which builds images in OCI layouts.
pub const UMOCI: Tool = Tool {
    program: "umoci",
    package: "umoci",
};

impl Tool {
    /// Returns a command for the program.
    pub fn command(self) -> Command {
        Command::new(self.program)
    }

    /// Runs the program with `args` and returns its standard output.
    ///
    /// # Panics
    ///
    /// As [`run`], with the package to install when the program is missing.
    pub fn run<I, S>(self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command();
        command.args(args);
        run_tool(&mut command, Some(self))
    }
}

/// Runs `command` to completion and returns its standard output.
///
/// # Panics
///
/// When the program cannot be started or exits with a status other than 0.
/// The message shows the command line, the status and both outputs.
pub fn run(command: &mut Command) -> Vec<u8> {
    run_tool(command, None)
}

/// Runs `command` to completion and returns its output whatever the exit
/// status, for tests that check a failure.
///
/// # Panics
///
/// When the program cannot be started.
pub fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("starting `{}` failed: {e}", describe(command)))
}

/// Runs `command` like [`run`]. When `tool` is given and its program is not
/// on `PATH`, the message names the package to install.
pub(crate) fn run_tool(command: &mut Command, tool: Option<Tool>) -> Vec<u8> {
    let output = match (command.output(), tool) {
        (Ok(output), _) => output,
        (Err(error), Some(tool)) if error.kind() == ErrorKind::NotFound => panic!(
            "`{}` was not found on PATH: install the Debian package `{}` \
             (`apt-get install {}`, which .ci/run does)",
            tool.program, tool.package, tool.package
        ),
        (Err(error), _) => panic!("starting `{}` failed: {error}", describe(command)),
    };

    if !output.status.success() {
        panic!(
            "`{}` failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            describe(command),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.stdout
}

/// Returns the command line of `command` for messages, with arguments
/// quoted by `Debug`.
fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&format!("{:?}", arg.to_string_lossy()));
    }
    line
}

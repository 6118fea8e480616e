//! umoci, which builds images in OCI layouts.

use std::ffi::OsStr;
use std::path::Path;

use crate::command::UMOCI;
use crate::layout::OciLayout;

/// umoci, building images in an OCI layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Umoci;

impl Umoci {
    /// Creates an empty OCI layout at `layout`.
    pub fn init(self, layout: &Path) {
        UMOCI.run([
            OsStr::new("init"),
            OsStr::new("--layout"),
            layout.as_os_str(),
        ]);
    }

    /// Creates a new OCI layout at `dir` with one image under `tag` whose
    /// single layer contains `files`, and returns the layout.
    pub fn one_layer_image(self, dir: &Path, tag: &str, files: &[(&str, &[u8])]) -> OciLayout {
        let layout = OciLayout::new(dir);
        self.init(layout.dir());
        self.new_image(layout.dir(), tag);
        self.add_layer(layout.dir(), tag, files);
        layout
    }

    /// Creates an image with no layers under `tag`.
    pub fn new_image(self, layout: &Path, tag: &str) {
        UMOCI.run(["new", "--image", &image_arg(layout, tag)]);
    }

    /// Adds one layer to the image under `tag` that contains `files`, given
    /// as paths relative to the root filesystem and their contents.
    ///
    /// The image is unpacked into a fresh bundle with `--rootless`, so this
    /// also works without root, and repacked under the same tag.
    pub fn add_layer(self, layout: &Path, tag: &str, files: &[(&str, &[u8])]) {
        let bundle = tempfile::Builder::new()
            .prefix("registry-e2e-bundle-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory failed: {e}"));
        // umoci unpack creates the bundle directory itself.
        let bundle = bundle.path().join("bundle");
        let image = image_arg(layout, tag);
        UMOCI.run([
            OsStr::new("unpack"),
            OsStr::new("--rootless"),
            OsStr::new("--image"),
            OsStr::new(&image),
            bundle.as_os_str(),
        ]);

        for (path, contents) in files {
            let target = bundle.join("rootfs").join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .unwrap_or_else(|e| panic!("creating {} failed: {e}", parent.display()));
            }
            std::fs::write(&target, contents)
                .unwrap_or_else(|e| panic!("writing {} failed: {e}", target.display()));
        }

        UMOCI.run([
            OsStr::new("repack"),
            OsStr::new("--image"),
            OsStr::new(&image),
            bundle.as_os_str(),
        ]);
    }

    /// Sets the `architecture` and `os` of the image configuration under
    /// `tag`, which gives the image a new configuration and manifest.
    pub fn set_platform(self, layout: &Path, tag: &str, os: &str, architecture: &str) {
        UMOCI.run([
            "config",
            "--image",
            &image_arg(layout, tag),
            "--os",
            os,
            "--architecture",
            architecture,
        ]);
    }
}

/// Returns umoci's `--image` argument: `LAYOUT:TAG`.
fn image_arg(layout: &Path, tag: &str) -> String {
    format!("{}:{tag}", layout.display())
}

//! Tells the crate whether openh264 was built with its assembly. openh264-sys2 compiles the
//! codec's x86 assembly when `nasm` runs at build time and `OPENH264_NO_ASM` is unset, and
//! silently builds the slower C-only codec otherwise (~2.5x slower encoding); the same test here
//! becomes `media::transcode::OPENH264_ASSEMBLY`, so the bridge can say which one it runs.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=OPENH264_NO_ASM");
    println!("cargo:rerun-if-env-changed=PATH");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let x86 = arch == "x86_64" || arch == "x86";
    let disabled = std::env::var_os("OPENH264_NO_ASM").is_some();
    let nasm = Command::new("nasm")
        .arg("-v")
        .output()
        .is_ok_and(|out| out.status.success());
    let assembly = x86 && !disabled && nasm;
    println!(
        "cargo:rustc-env=MEDIA_OPENH264_ASSEMBLY={}",
        if assembly { "yes" } else { "no" }
    );
}

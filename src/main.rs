//! hap-bridge: a native HomeKit bridge for IP cameras.
#![forbid(unsafe_code)]

fn main() {
    println!("hap-bridge: under construction");
}

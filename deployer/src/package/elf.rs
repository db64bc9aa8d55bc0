//! Checks that a built binary is what Lambda and the image need: a Linux executable for
//! the requested architecture that loads without a dynamic loader (neither
//! `provided.al2023` with a musl binary nor the empty image has one it could use).

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

use crate::config::schema::Architecture;

#[derive(Debug, thiserror::Error, miette::Diagnostic, PartialEq, Eq)]
pub enum ElfError {
    #[error("is not an ELF executable ({0})")]
    NotElf(String),
    #[error("is built for {found}, not {wanted}")]
    WrongArchitecture { found: String, wanted: String },
    #[error(
        "is dynamically linked (it asks for the loader {0}); build it for a musl target, which links statically"
    )]
    Dynamic(String),
}

/// Ok when `bytes` is a static 64-bit little-endian ELF executable for `arch`.
pub fn check_static(bytes: &[u8], arch: Architecture) -> Result<(), ElfError> {
    let header = elf::FileHeader64::<object::Endianness>::parse(bytes)
        .map_err(|e| ElfError::NotElf(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| ElfError::NotElf(e.to_string()))?;
    let machine = header.e_machine(endian);
    let wanted = match arch {
        Architecture::X86_64 => elf::EM_X86_64,
        Architecture::Arm64 => elf::EM_AARCH64,
    };
    if machine != wanted {
        return Err(ElfError::WrongArchitecture {
            found: machine_name(machine),
            wanted: machine_name(wanted),
        });
    }
    let kind = header.e_type(endian);
    if kind != elf::ET_EXEC && kind != elf::ET_DYN {
        return Err(ElfError::NotElf(format!(
            "ELF type {kind} is not an executable"
        )));
    }
    let segments = header
        .program_headers(endian, bytes)
        .map_err(|e| ElfError::NotElf(e.to_string()))?;
    for segment in segments {
        if segment.p_type(endian) == elf::PT_INTERP {
            let loader = segment
                .data(endian, bytes)
                .map(|d| {
                    String::from_utf8_lossy(d)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_else(|_| "?".to_string());
            return Err(ElfError::Dynamic(loader));
        }
    }
    Ok(())
}

fn machine_name(machine: elf::Machine) -> String {
    if machine == elf::EM_X86_64 {
        "x86_64".to_string()
    } else if machine == elf::EM_AARCH64 {
        "arm64 (aarch64)".to_string()
    } else {
        format!("machine {machine:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_recognised_by_architecture() {
        // The test binary itself: an ELF for the host, dynamically linked on glibc hosts.
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let (host, other) = if cfg!(target_arch = "x86_64") {
            (Architecture::X86_64, Architecture::Arm64)
        } else {
            (Architecture::Arm64, Architecture::X86_64)
        };
        assert!(matches!(
            check_static(&bytes, other),
            Err(ElfError::WrongArchitecture { .. })
        ));
        let musl = cfg!(target_env = "musl");
        match check_static(&bytes, host) {
            Ok(()) => assert!(musl, "a glibc test binary passed as static"),
            Err(ElfError::Dynamic(loader)) => assert!(loader.contains("ld-"), "{loader}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn other_files_are_not_executables() {
        assert!(matches!(
            check_static(b"#!/bin/sh\necho hi\n", Architecture::X86_64),
            Err(ElfError::NotElf(_))
        ));
        assert!(matches!(
            check_static(b"", Architecture::Arm64),
            Err(ElfError::NotElf(_))
        ));
    }
}

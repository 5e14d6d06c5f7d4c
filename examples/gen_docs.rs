//! Makes tpmkey's man pages and shell completions from the CLI definition itself
//! (`src/bin/tpmkey/cli.rs`, included below), so that they list exactly the
//! subcommands and options the binary has: `tpmkey(1)` and one page per subcommand
//! (`tpmkey-token-add(1)`, …, found by walking the clap tree), and completions for
//! bash, zsh and fish. The package and release-tarball scripts run it:
//!
//! `cargo run --release --example gen_docs -- OUTDIR`
//!
//! writes `OUTDIR/man1/*.1` and `OUTDIR/completions/{tpmkey,_tpmkey,tpmkey.fish}`
//! (named as bash-completion, zsh and fish look them up). libtpmkey(7) is written
//! by hand (`dist/libtpmkey.7`): it documents the module, which has no clap tree.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

#[allow(dead_code)] // the binary reads the parsed fields; here only the definition is used
#[path = "../src/bin/tpmkey/cli.rs"]
mod cli;

/// The ENVIRONMENT entries of tpmkey(1): variable, what it does.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "TPMKEY_TCTI",
        "The TPM, as a TCTI string (device:/dev/tpmrm0, device:/dev/tpm0, \
         swtpm:host=H,port=P, swtpm:path=SOCKET, mssim:host=H,port=P); --tcti overrides it.",
    ),
    (
        "TPM2TOOLS_TCTI",
        "Read when TPMKEY_TCTI is unset, as tpm2-tools do. Default: device:/dev/tpmrm0.",
    ),
    (
        "TPMKEY_STORE",
        "The key store directory; --store overrides it. Default: $XDG_DATA_HOME/tpmkey, \
         else ~/.local/share/tpmkey.",
    ),
    (
        "TPMKEY_PIN, TPMKEY_SOPIN, TPMKEY_NEW_PIN",
        "The user PIN, the SO PIN and a new user PIN, for scripts; read when neither the \
         option nor --pin-file gives one, before prompting.",
    ),
    (
        "TPMKEY_PASSPHRASE",
        "The passphrase of a key file for key import, when --passphrase-file is absent.",
    ),
    (
        "TPMKEY_TIMEOUT",
        "How long, in seconds, the TPM may take to answer one command (default 120) \
         before tpmkey fails naming the TPM and the command; also how long to wait \
         for another process that is changing the key store.",
    ),
    (
        "TPMKEY_BUSY_TIMEOUT",
        "How long, in seconds, to wait for a raw /dev/tpm0 another process has open \
         (default 5) before tpmkey fails naming that process.",
    ),
];

/// Appends `.SH NAME` with `.TP` entries to a page.
fn section(roff: &mut Roff, name: &str, entries: &[(&str, &str)]) {
    roff.control("SH", [name]);
    for (term, text) in entries {
        roff.control("TP", [])
            .text([bold(*term)])
            .text([roman(*text)]);
    }
}

/// The SEE ALSO line: `page(section)` references.
fn see_also(roff: &mut Roff, pages: &[(&str, &str)]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut parts = Vec::new();
    for (i, (page, sec)) in pages.iter().enumerate() {
        if i > 0 {
            parts.push(roman(", "));
        }
        parts.push(bold(*page));
        parts.push(roman(format!("({sec})")));
    }
    roff.text(parts);
}

/// Writes the page of `cmd` and, recursively, of each of its visible subcommands.
fn man_pages(cmd: &clap::Command, dir: &Path, top: bool) -> io::Result<usize> {
    let mut n = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        n += man_pages(sub, dir, false)?;
    }
    let man = Man::new(cmd.clone()).manual("tpmkey manual");
    let mut page = Vec::new();
    man.render(&mut page)?;
    let mut extra = Roff::new();
    if top {
        section(&mut extra, "ENVIRONMENT", ENVIRONMENT);
        section(
            &mut extra,
            "FILES",
            &[
                (
                    "~/.local/share/tpmkey/",
                    "The key store: 0600 JSON files in a 0700 directory, holding public \
                     areas and TPM-wrapped blobs only.",
                ),
                (
                    "/usr/lib/x86_64-linux-gnu/pkcs11/libtpmkey.so",
                    "The PKCS#11 module (libtpmkey(7)), for ssh -I, PKCS11Provider and p11-kit.",
                ),
            ],
        );
        extra.control("SH", ["EXAMPLES"]).control("nf", []);
        for line in [
            "tpmkey init",
            "tpmkey token add --label ssh",
            "tpmkey key add --token ssh --label laptop --algorithm ecc256",
            "ssh-keygen -D /usr/lib/x86_64-linux-gnu/pkcs11/libtpmkey.so",
            "ssh -I /usr/lib/x86_64-linux-gnu/pkcs11/libtpmkey.so host",
        ] {
            extra.text([roman(line)]);
        }
        extra.control("fi", []);
    }
    let mut refs = vec![("libtpmkey", "7"), ("ssh", "1"), ("ssh-keygen", "1")];
    if !top {
        refs.insert(0, ("tpmkey", "1"));
    }
    see_also(&mut extra, &refs);
    if top {
        extra.control("PP", []).text([
            roman("Subcommands have their own pages: "),
            italic("man tpmkey-key-add"),
            roman(", …"),
        ]);
    }
    extra.to_writer(&mut page)?;
    fs::File::create(dir.join(man.get_filename()))?.write_all(&page)?;
    Ok(n + 1)
}

fn main() -> io::Result<()> {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: cargo run --example gen_docs -- OUTDIR");
        std::process::exit(2);
    };
    let out = Path::new(&out);
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();

    let man1 = out.join("man1");
    fs::create_dir_all(&man1)?;
    let pages = man_pages(&cmd, &man1, true)?;

    let completions = out.join("completions");
    fs::create_dir_all(&completions)?;
    for (shell, file) in [
        (Shell::Bash, "tpmkey"),
        (Shell::Zsh, "_tpmkey"),
        (Shell::Fish, "tpmkey.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, "tpmkey", &mut script);
        fs::write(completions.join(file), script)?;
    }
    println!(
        "{pages} man pages in {}, completions for bash, zsh and fish in {}",
        man1.display(),
        completions.display()
    );
    Ok(())
}

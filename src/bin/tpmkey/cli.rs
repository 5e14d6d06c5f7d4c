//! The command line as clap sees it: every subcommand, argument and help text.
//!
//! Kept apart from `main.rs` so that `examples/gen_docs.rs` can include this same
//! file (`#[path]`) and make the man pages and shell completions from it at
//! package-build time. So this file uses only `std`, `clap` and the `tpmkey`
//! library, nothing else of the binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Keep SSH and signing keys inside the TPM.
#[derive(Parser)]
#[command(name = "tpmkey", version, about, long_about = None)]
pub(crate) struct Cli {
    /// TPM to use, as a TCTI string (default: $TPMKEY_TCTI, $TPM2TOOLS_TCTI, device:/dev/tpmrm0).
    #[arg(long, short = 'T', global = true, value_name = "TCTI")]
    pub(crate) tcti: Option<String>,
    /// Key store directory (default: $TPMKEY_STORE, $XDG_DATA_HOME/tpmkey, ~/.local/share/tpmkey).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Show what TPM this is: manufacturer, firmware, algorithms, PCR banks, lockout state, SRK.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Walk through why a TPM cannot be used here, and what to do about it.
    Check,
    /// Print N random bytes from the TPM, in hex.
    Random {
        /// How many bytes.
        n: usize,
    },
    /// Set up the key store for this TPM: find or derive the storage root key and pin it.
    Init {
        /// Storage root key type.
        #[arg(long, value_parser = ["ecc", "rsa"], default_value = "ecc")]
        srk: String,
        /// Leave the SRK transient (derived again by every process) instead of
        /// making it persistent at 0x81000001.
        #[arg(long)]
        no_persist: bool,
    },
    /// Tokens: groups of keys sharing a user PIN and an SO PIN.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// X.509 certificates on a token: requests and self-signed certificates signed
    /// by the TPM, import, list, export, removal.
    #[command(subcommand)]
    Cert(CertCmd),
    /// User PINs.
    #[command(subcommand)]
    Pin(PinCmd),
    /// Seal a secret (stdin or --in, at most 128 bytes) to this TPM under a PCR
    /// policy and/or a PIN; write the sealed file (JSON, 0600, not secret).
    Seal {
        /// PCRs whose current values the secret is sealed to: BANK:LIST, banks
        /// joined with '+', e.g. sha256:7,16 or sha256:7+sha1:0; empty = none
        /// (only with --with-pin).
        #[arg(long, default_value = "", value_name = "PCRS")]
        pcrs: String,
        /// Also require a PIN (PolicyAuthValue; the TPM counts wrong guesses).
        #[arg(long)]
        with_pin: bool,
        /// Read the PIN from the first line of this file (else $TPMKEY_PIN, else a prompt).
        #[arg(long, requires = "with_pin")]
        pin_file: Option<PathBuf>,
        /// Read the secret from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// The sealed file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Unseal a secret sealed with `tpmkey seal`; writes the raw bytes to stdout or --out.
    Unseal {
        /// The sealed file.
        file: PathBuf,
        /// Write the secret to this file (0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Read the PIN from the first line of this file (else $TPMKEY_PIN, else a prompt).
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// Sign data (stdin or --in) with a key of the store; prints the signature in
    /// hex (ECDSA r||s, RSA PKCS#1 v1.5), after checking it against the public key.
    Sign {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long)]
        label: String,
        /// The token's user PIN (prompted for when needed and absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Read the user PIN from the first line of this file.
        #[arg(long)]
        pin_file: Option<PathBuf>,
        /// The hash of the data: sha256, sha384, sha512 or sha1.
        #[arg(long, default_value = "sha256")]
        hash: String,
        /// Read the data from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// PCRs: read, extend.
    #[command(subcommand)]
    Pcr(PcrCmd),
    /// Print authorized_keys lines for the keys (comment = key label).
    SshPubkey {
        /// Only this token.
        #[arg(long)]
        token: Option<String>,
        /// Only this key.
        #[arg(long)]
        label: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum PcrCmd {
    /// Extend a SHA-256 PCR with SHA-256(DATA) (TPM2_PCR_Extend). PCRs 16 (debug)
    /// and 23 (application) only, unless --force.
    Extend {
        /// The PCR.
        index: u8,
        /// The string whose SHA-256 is extended into the PCR.
        #[arg(long)]
        data: String,
        /// Allow PCRs other than 16 and 23 (this breaks secrets sealed to them until reboot).
        #[arg(long)]
        force: bool,
    },
    /// Print PCR values, e.g. `tpmkey pcr read sha256:7,16`.
    Read {
        /// The PCRs: BANK:LIST, banks joined with '+'.
        pcrs: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Add a token.
    Add {
        /// Its label.
        #[arg(long)]
        label: String,
        /// User PIN (prompted for when absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Security officer PIN, to reset the user PIN (prompted for when absent).
        #[arg(long)]
        sopin: Option<String>,
        /// No PIN: keys are used with no login at all.
        #[arg(long, conflicts_with_all = ["userpin", "sopin"])]
        no_pin: bool,
    },
    /// List tokens.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a token and its keys (and its persistent user seal from the TPM).
    Rm {
        /// Its label.
        #[arg(long)]
        label: String,
        /// Remove it even when its persistent seal cannot be removed from the TPM
        /// (no TPM here), or its record cannot be read.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum PinCmd {
    /// Change the user PIN (needs the old one).
    Change {
        /// The token.
        #[arg(long)]
        token: String,
        /// The current user PIN.
        #[arg(long)]
        userpin: Option<String>,
        /// The new user PIN.
        #[arg(long)]
        new_userpin: Option<String>,
    },
    /// Set a new user PIN with the SO PIN.
    Reset {
        /// The token.
        #[arg(long)]
        token: String,
        /// The SO PIN.
        #[arg(long)]
        sopin: Option<String>,
        /// The new user PIN.
        #[arg(long)]
        new_userpin: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeyCmd {
    /// Make a key inside the TPM.
    Add {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long)]
        label: String,
        /// ecc256, ecc384, rsa2048, rsa3072 or rsa4096.
        #[arg(long, default_value = "ecc256")]
        algorithm: String,
        /// sign, decrypt or sign,decrypt: what the TPM lets the key do (for an
        /// ECC key, decrypt means ECDH key agreement).
        #[arg(long, default_value = "sign")]
        usage: String,
        /// The token's user PIN (prompted for when needed and absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Read the user PIN from the first line of this file.
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// Move an existing private key into the TPM (OpenSSH, PEM PKCS#8/SEC1/PKCS#1),
    /// or take over a TPM key file (TSS2 PRIVATE KEY: tpm2-openssl, tpm2-tss-engine,
    /// ssh-tpm-agent) made under this TPM's storage root key.
    Import {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long)]
        label: String,
        /// The private key file.
        file: PathBuf,
        /// sign, decrypt or sign,decrypt: what the TPM lets the key do (for an
        /// ECC key, decrypt means ECDH key agreement); default sign. A TSS2 key
        /// file keeps the usage it was made with.
        #[arg(long)]
        usage: Option<String>,
        /// The token's user PIN (prompted for when needed and absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Read the user PIN from the first line of this file.
        #[arg(long)]
        pin_file: Option<PathBuf>,
        /// Read the key file's passphrase (a TSS2 key's password) from the first
        /// line of this file (else $TPMKEY_PASSPHRASE, else a prompt).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Write a key of the store as a TSS2 PRIVATE KEY file for tpm2-openssl,
    /// tpm2-tss-engine or ssh-tpm-agent: a copy of the key, made in the TPM, with
    /// its own password; the key in the store keeps its PIN.
    Export {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long)]
        label: String,
        /// Write a TSS2 PRIVATE KEY file (the one format there is).
        #[arg(long, required = true)]
        tss2: bool,
        /// Write to this file (created 0600, never overwritten) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// No password on the exported key (emptyAuth): whoever can read the file and
        /// use this TPM can sign.
        #[arg(long)]
        no_password: bool,
        /// Read the exported key's password from the first line of this file (else
        /// $TPMKEY_PASSPHRASE, else a prompt, asked twice).
        #[arg(long, conflicts_with = "no_password")]
        passphrase_file: Option<PathBuf>,
        /// The token's user PIN (prompted for when needed and absent).
        #[arg(long)]
        userpin: Option<String>,
        /// Read the user PIN from the first line of this file.
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// List keys.
    List {
        /// Only this token.
        #[arg(long)]
        token: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a key (named by its label, or by its id as `key list` shows it).
    Rm {
        /// The token.
        #[arg(long)]
        token: String,
        /// The key's label.
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        label: Option<String>,
        /// The key's id (hex), for keys that share a label.
        #[arg(long)]
        id: Option<String>,
    },
}

/// What `request` and `selfsign` share: the key, the subject, the PIN.
#[derive(Args)]
pub(crate) struct Signed {
    /// The token.
    #[arg(long)]
    pub(crate) token: String,
    /// The key's label.
    #[arg(long)]
    pub(crate) key: String,
    /// The subject, RFC 4514: 'CN=alice,O=Example'.
    #[arg(long)]
    pub(crate) subject: String,
    /// Subject alternative names: DNS:host,email:a@b,URI:https://…,IP:1.2.3.4.
    #[arg(long, default_value = "")]
    pub(crate) san: String,
    /// Write it to this file (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// The token's user PIN (prompted for when needed and absent).
    #[arg(long)]
    pub(crate) userpin: Option<String>,
    /// Read the user PIN from the first line of this file.
    #[arg(long)]
    pub(crate) pin_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum CertCmd {
    /// Make a PKCS#10 certification request (PEM) for a key, signed by the TPM;
    /// give it to a CA, then `tpmkey cert import` what it returns.
    Request(Signed),
    /// Make an X.509 v3 certificate for a key signed by the key itself (a private
    /// CA, or testing): basicConstraints CA, keyUsage digitalSignature,
    /// keyCertSign and cRLSign, subject key identifier. It is stored on the token with
    /// the key and printed (PEM).
    Selfsign {
        #[command(flatten)]
        signed: Signed,
        /// Days of validity from now.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Put certificates (PEM or DER; one or a chain) on a token: a key's certificate
    /// is attached to the key (its CKA_ID and label), a CA certificate is stored on
    /// its own. Needs no PIN and no TPM.
    Import {
        /// The token.
        #[arg(long)]
        token: String,
        /// The certificate file.
        file: PathBuf,
        /// The label on the token (one certificate only; default: the key's label,
        /// or a CA's common name).
        #[arg(long)]
        label: Option<String>,
        /// Also store a certificate that matches no key and is not a CA's.
        #[arg(long)]
        standalone: bool,
    },
    /// List certificates (the store only, no TPM).
    List {
        /// Only this token.
        #[arg(long)]
        token: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a certificate (PEM, or DER with --der).
    Export {
        /// The token.
        #[arg(long)]
        token: String,
        /// The certificate's label.
        #[arg(long)]
        label: String,
        /// DER instead of PEM.
        #[arg(long)]
        der: bool,
        /// Write it here (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Remove a certificate from a token (its key stays).
    Rm {
        /// The token.
        #[arg(long)]
        token: String,
        /// The certificate's label.
        #[arg(long)]
        label: String,
    },
}

//! `tpmkey info`.

use tpmkey::info::{gather, TpmInfo};
use tpmkey::tpm_commands::attributes::TpmaAlgorithm;
use tpmkey::{Result, Tpm};

fn alg_kind(p: TpmaAlgorithm) -> &'static str {
    if p.contains(TpmaAlgorithm::HASH) {
        "hash"
    } else if p.contains(TpmaAlgorithm::ASYMMETRIC) && p.contains(TpmaAlgorithm::OBJECT) {
        "asymmetric key"
    } else if p.contains(TpmaAlgorithm::SYMMETRIC) {
        "symmetric"
    } else if p.contains(TpmaAlgorithm::SIGNING) {
        "signing scheme"
    } else if p.contains(TpmaAlgorithm::ENCRYPTING) {
        "encryption scheme"
    } else if p.contains(TpmaAlgorithm::METHOD) {
        "method"
    } else {
        "other"
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn print_json(i: &TpmInfo, tcti: &str) {
    let algs: Vec<String> = i
        .algorithms
        .iter()
        .map(|(a, p)| {
            format!(
                "{{\"name\":{},\"kind\":{}}}",
                json_str(&a.to_string()),
                json_str(alg_kind(*p))
            )
        })
        .collect();
    let curves: Vec<String> = i.curves.iter().map(|c| json_str(&c.to_string())).collect();
    let banks: Vec<String> = i
        .pcr_banks
        .iter()
        .map(|(h, n)| format!("{{\"hash\":{},\"pcrs\":{}}}", json_str(&h.to_string()), n))
        .collect();
    let srk = match &i.srk {
        Some(s) => format!(
            "{{\"handle\":\"0x81000001\",\"type\":{},\"name\":{}}}",
            json_str(&s.kind),
            json_str(&s.name)
        ),
        None => "null".into(),
    };
    println!(
        "{{\"tcti\":{},\"manufacturer\":{},\"vendor\":{},\"firmware\":\"{}.{}\",\"family\":{},\"level\":{},\"revision\":\"{}.{:02}\",\"spec_year\":{},\"spec_day\":{},\"algorithms\":[{}],\"ecc_curves\":[{}],\"pcr_banks\":[{}],\"dictionary_attack\":{{\"failed_tries\":{},\"max_tries\":{},\"recovery_time_s\":{},\"lockout_recovery_s\":{},\"in_lockout\":{}}},\"owner_auth_set\":{},\"storage_hierarchy_enabled\":{},\"srk\":{}}}",
        json_str(tcti),
        json_str(&i.manufacturer),
        json_str(&i.vendor),
        i.firmware.0 >> 16,
        i.firmware.0 & 0xFFFF,
        json_str(&i.family),
        i.level,
        i.revision / 100,
        i.revision % 100,
        i.spec_date.0,
        i.spec_date.1,
        algs.join(","),
        curves.join(","),
        banks.join(","),
        i.da.failed_tries,
        i.da.max_tries,
        i.da.recovery_time,
        i.da.lockout_recovery,
        i.da.in_lockout,
        i.owner_auth_set,
        i.storage_enabled,
        srk
    );
}

/// Prints what TPM this is.
pub fn run(tpm: &mut Tpm, json: bool) -> Result<()> {
    let i = gather(tpm)?;
    let tcti = tpm.tcti().map(|t| t.to_string()).unwrap_or_default();
    if json {
        print_json(&i, &tcti);
        return Ok(());
    }
    println!("TPM:               {tcti}");
    println!("Manufacturer:      {}", i.manufacturer);
    println!("Vendor:            {}", i.vendor);
    println!(
        "Firmware:          {}.{} ({:#010x} {:#010x})",
        i.firmware.0 >> 16,
        i.firmware.0 & 0xFFFF,
        i.firmware.0,
        i.firmware.1
    );
    println!(
        "Spec:              TPM {} level {} revision {}.{:02} ({} day {})",
        i.family,
        i.level,
        i.revision / 100,
        i.revision % 100,
        i.spec_date.0,
        i.spec_date.1
    );
    let names = |f: &dyn Fn(TpmaAlgorithm) -> bool| {
        i.algorithms
            .iter()
            .filter(|(_, p)| f(*p))
            .map(|(a, _)| a.to_string().trim_start_matches("TPM_ALG_").to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "Hashes:            {}",
        names(&|p| p == TpmaAlgorithm::HASH)
    );
    println!(
        "Key types:         {}",
        names(&|p| p.contains(TpmaAlgorithm::OBJECT))
    );
    println!(
        "Symmetric:         {}",
        names(&|p| p.contains(TpmaAlgorithm::SYMMETRIC) && !p.contains(TpmaAlgorithm::OBJECT))
    );
    println!(
        "Signing schemes:   {}",
        names(&|p| p.contains(TpmaAlgorithm::SIGNING))
    );
    println!(
        "ECC curves:        {}",
        i.curves
            .iter()
            .map(|c| c.to_string().trim_start_matches("TPM_ECC_").to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "PCR banks:         {}",
        i.pcr_banks
            .iter()
            .map(|(h, n)| format!(
                "{} ({n} PCRs)",
                h.to_string().trim_start_matches("TPM_ALG_")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "Dictionary attack: {} of {} failed tries, recovery {} s per try, lockout recovery {} s{}",
        i.da.failed_tries,
        i.da.max_tries,
        i.da.recovery_time,
        i.da.lockout_recovery,
        if i.da.in_lockout { ", IN LOCKOUT" } else { "" }
    );
    println!(
        "Owner auth set:    {}",
        if i.owner_auth_set { "yes" } else { "no" }
    );
    match &i.srk {
        Some(s) => println!("SRK 0x81000001:    {} (Name {})", s.kind, s.name),
        None => println!("SRK 0x81000001:    none (tpmkey init will create a transient one from the standard template)"),
    }
    Ok(())
}

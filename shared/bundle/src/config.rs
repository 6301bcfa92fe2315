//! `platform.toml`: what the platform is and which service domains dom0
//! builds from the bundle.
//!
//! ```toml
//! [platform]
//! name = "xcp-rs"
//!
//! [[domain]]
//! name = "testdom"
//! image = "testdom.elf"
//! memory_mib = 8
//! restart = true
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

use crate::Bundle;

/// Largest memory a service domain may ask for.
pub const MAX_DOMAIN_MIB: u32 = 2048;
/// Most domains a platform may list.
pub const MAX_DOMAINS: usize = 32;

/// The whole file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// Platform-wide settings.
    pub platform: PlatformSection,
    /// Service domains, in build order.
    #[serde(default, rename = "domain")]
    pub domains: Vec<DomainConfig>,
    /// The XenAPI toolstack in dom0.
    #[serde(default)]
    pub toolstack: Option<ToolstackSection>,
}

/// `[toolstack]`
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ToolstackSection {
    /// The salted hash of root's XenAPI password
    /// (`pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`).
    pub root_password_hash: String,
}

/// `[platform]`
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlatformSection {
    /// Shown in the banner and used as the pool name.
    pub name: String,
    /// Management network (netdom's address): `"dhcp"`, or `"A.B.C.D/N"`
    /// optionally followed by `" gw A.B.C.D"` ([`crate::Management`]).
    #[serde(default = "default_management")]
    pub management: String,
    /// Xen's command line (used by the boot loader configuration).
    #[serde(default)]
    pub xen_cmdline: String,
    /// dom0's command line (used by the boot loader configuration).
    #[serde(default)]
    pub dom0_cmdline: String,
}

fn default_management() -> String {
    String::from("dhcp")
}

/// `[[domain]]`
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// Domain name (console prefix, xenstore name).
    pub name: String,
    /// Bundle entry holding the ELF image.
    pub image: String,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Rebuild it when it dies.
    #[serde(default)]
    pub restart: bool,
    /// Build it at boot.
    #[serde(default = "default_true")]
    pub start: bool,
    /// Its command line.
    #[serde(default)]
    pub cmdline: String,
    /// This is the xenstore domain: dom0 builds it before every other one.
    #[serde(default)]
    pub xenstore: bool,
    /// It is given PCI devices (a driver domain): built with an IOMMU context.
    #[serde(default)]
    pub passthrough: bool,
    /// It is the network domain: dom0 hands it the first virtio-net NIC and,
    /// when the toolstack runs, a XenAPI relay channel (needs `passthrough`).
    #[serde(default)]
    pub nic: bool,
    /// It is the storage domain: dom0 hands it the first virtio-blk disk
    /// and, when the toolstack runs, a channel to it (needs `passthrough`).
    #[serde(default)]
    pub disk: bool,
}

fn default_true() -> bool {
    true
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The bundle has no `platform.toml`.
    Missing,
    /// Not UTF-8.
    NotUtf8,
    /// TOML syntax or schema error (the parser's message).
    Parse(String),
    /// A rule below was broken.
    Invalid(String),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::Missing => write!(f, "the bundle has no {}", crate::CONFIG_NAME),
            ConfigError::NotUtf8 => write!(f, "{} is not UTF-8", crate::CONFIG_NAME),
            ConfigError::Parse(m) => write!(f, "{}: {}", crate::CONFIG_NAME, m.trim_end()),
            ConfigError::Invalid(m) => write!(f, "{}: {}", crate::CONFIG_NAME, m),
        }
    }
}

impl PlatformConfig {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: PlatformConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(alloc::format!("{e}")))?;
        config.check()?;
        Ok(config)
    }

    /// Reads `platform.toml` from `bundle` and checks every image it names
    /// is in the bundle.
    pub fn from_bundle(bundle: &Bundle<'_>) -> Result<Self, ConfigError> {
        let entry = bundle.get(crate::CONFIG_NAME).ok_or(ConfigError::Missing)?;
        let text = core::str::from_utf8(entry.data).map_err(|_| ConfigError::NotUtf8)?;
        let config = Self::parse(text)?;
        for d in &config.domains {
            if bundle.get(&d.image).is_none() {
                return Err(ConfigError::Invalid(alloc::format!(
                    "domain {} names image {}, which is not in the bundle",
                    d.name,
                    d.image
                )));
            }
        }
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if let Err(e) = crate::Management::parse(&self.platform.management) {
            return invalid(e);
        }
        if self.domains.len() > MAX_DOMAINS {
            return invalid(alloc::format!("more than {MAX_DOMAINS} domains"));
        }
        if let Some(d) = self.domains.iter().find(|d| d.nic && !d.passthrough) {
            return invalid(alloc::format!(
                "domain {}: nic needs passthrough = true",
                d.name
            ));
        }
        if let Some(d) = self.domains.iter().find(|d| d.disk && !d.passthrough) {
            return invalid(alloc::format!(
                "domain {}: disk needs passthrough = true",
                d.name
            ));
        }
        if let Some(d) = self.domains.iter().find(|d| d.disk && d.nic) {
            return invalid(alloc::format!(
                "domain {}: one domain cannot hold both the nic and the disk",
                d.name
            ));
        }
        for (what, count) in [
            ("nic", self.domains.iter().filter(|d| d.nic).count()),
            ("disk", self.domains.iter().filter(|d| d.disk).count()),
        ] {
            if count > 1 {
                return invalid(alloc::format!("more than one domain with {what} = true"));
            }
        }
        if self.domains.iter().filter(|d| d.xenstore).count() > 1 {
            return invalid(String::from("more than one xenstore domain"));
        }
        for (i, d) in self.domains.iter().enumerate() {
            let name_ok = !d.name.is_empty()
                && d.name.len() <= 64
                && d.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return invalid(alloc::format!("bad domain name {:?}", d.name));
            }
            if self.domains[..i].iter().any(|o| o.name == d.name) {
                return invalid(alloc::format!("domain {} is listed twice", d.name));
            }
            if d.memory_mib == 0 || d.memory_mib > MAX_DOMAIN_MIB {
                return invalid(alloc::format!(
                    "domain {}: memory_mib must be 1..={MAX_DOMAIN_MIB}",
                    d.name
                ));
            }
            if d.cmdline.len() >= 1024 {
                return invalid(alloc::format!("domain {}: cmdline over 1023 bytes", d.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write_newc;

    const GOOD: &str = r#"
[platform]
name = "xcp-rs"

[[domain]]
name = "testdom"
image = "testdom.elf"
memory_mib = 8
restart = true
"#;

    #[test]
    fn parses_defaults() {
        let c = PlatformConfig::parse(GOOD).unwrap();
        assert_eq!(c.platform.name, "xcp-rs");
        assert_eq!(c.platform.management, "dhcp");
        assert_eq!(c.domains.len(), 1);
        assert!(c.domains[0].restart && c.domains[0].start);
        assert_eq!(c.domains[0].cmdline, "");
    }

    #[test]
    fn refuses_bad_configs() {
        assert!(matches!(
            PlatformConfig::parse("[platform"),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            PlatformConfig::parse("[platform]\nname='x'\nbogus=1"),
            Err(ConfigError::Parse(_))
        ));
        let management = GOOD.replace("name = \"xcp-rs\"", "name = 'x'\nmanagement = '10.0.2.15'");
        assert_eq!(
            PlatformConfig::parse(&management),
            Err(ConfigError::Invalid(String::from(
                "management: \"10.0.2.15\" is not dhcp or A.B.C.D/N [gw A.B.C.D]"
            )))
        );
        let fixed = GOOD.replace(
            "name = \"xcp-rs\"",
            "name = 'x'\nmanagement = '10.0.2.15/24 gw 10.0.2.2'",
        );
        assert_eq!(
            PlatformConfig::parse(&fixed).map(|c| c.platform.management),
            Ok(String::from("10.0.2.15/24 gw 10.0.2.2"))
        );
        let zero = GOOD.replace("memory_mib = 8", "memory_mib = 0");
        assert!(matches!(
            PlatformConfig::parse(&zero),
            Err(ConfigError::Invalid(_))
        ));
        let twice = alloc::format!("{GOOD}\n[[domain]]\nname='testdom'\nimage='x'\nmemory_mib=1\n");
        assert!(matches!(
            PlatformConfig::parse(&twice),
            Err(ConfigError::Invalid(_))
        ));
        let disk = GOOD.replace("restart = true", "restart = true\ndisk = true");
        assert_eq!(
            PlatformConfig::parse(&disk),
            Err(ConfigError::Invalid(String::from(
                "domain testdom: disk needs passthrough = true"
            )))
        );
        let both = GOOD.replace(
            "restart = true",
            "restart = true\npassthrough = true\ndisk = true\nnic = true",
        );
        assert!(matches!(
            PlatformConfig::parse(&both),
            Err(ConfigError::Invalid(_))
        ));
        let two_disks =
            alloc::format!(
            "{}\n[[domain]]\nname='other'\nimage='x'\nmemory_mib=1\npassthrough=true\ndisk=true\n",
            GOOD.replace("restart = true", "restart = true\npassthrough = true\ndisk = true")
        );
        assert_eq!(
            PlatformConfig::parse(&two_disks),
            Err(ConfigError::Invalid(String::from(
                "more than one domain with disk = true"
            )))
        );
        let badname = GOOD.replace("name = \"testdom\"", "name = \"a b\"");
        assert!(matches!(
            PlatformConfig::parse(&badname),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn images_must_be_in_the_bundle() {
        let with = write_newc(&[
            ("platform.toml", GOOD.as_bytes()),
            ("testdom.elf", b"\x7fELF"),
        ]);
        assert!(PlatformConfig::from_bundle(&Bundle::parse(&with).unwrap()).is_ok());
        let without = write_newc(&[("platform.toml", GOOD.as_bytes())]);
        assert!(matches!(
            PlatformConfig::from_bundle(&Bundle::parse(&without).unwrap()),
            Err(ConfigError::Invalid(_))
        ));
        let none = write_newc(&[("x", b"")]);
        assert_eq!(
            PlatformConfig::from_bundle(&Bundle::parse(&none).unwrap()),
            Err(ConfigError::Missing)
        );
    }
}

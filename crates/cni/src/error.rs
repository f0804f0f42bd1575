use serde::Serialize;
use std::fmt;

/// Error codes from the CNI specification, plus this project's own (100+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    IncompatibleVersion,
    UnsupportedField,
    ContainerUnknown,
    InvalidEnv,
    Io,
    Decode,
    InvalidConfig,
    TryAgainLater,
    NotAvailable,
    /// 100: Open vSwitch refused or contradicts what the configuration asks.
    OvsRefused,
    /// 101: CHECK found the node's wiring differs from the configuration.
    Drift,
    /// 102: a kernel (netlink) operation failed.
    Kernel,
}

impl Code {
    pub fn as_u32(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::ContainerUnknown => 3,
            Code::InvalidEnv => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::NotAvailable => 50,
            Code::OvsRefused => 100,
            Code::Drift => 101,
            Code::Kernel => 102,
        }
    }
}

/// A CNI error object: what a plugin prints on stdout when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON object the spec defines, stamped with the version the caller
    /// spoke (or the latest one when it could not be read).
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_value(Wire {
            cni_version,
            code: self.code.as_u32(),
            msg: &self.msg,
            details: &self.details,
        })
        .expect("error object serialises")
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code.as_u32())?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_object_has_the_spec_shape() {
        let e = CniError::new(Code::InvalidConfig, "bad").with_details("why");
        let v = e.to_json("1.0.0");
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"})
        );
        let v = CniError::new(Code::TryAgainLater, "busy").to_json("0.4.0");
        assert_eq!(v["code"], 11);
        assert!(v.get("details").is_none());
    }
}

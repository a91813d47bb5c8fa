//! Logging through the host, tagged there with the plugin and connection.

pub use crate::host::LogLevel;

pub fn log(level: LogLevel, message: &str) {
    crate::host::log(level, message);
}
pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

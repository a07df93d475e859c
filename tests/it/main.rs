//! zenedge's integration tests: one binary, the daemon started in-process on port 0 (or the
//! real binary where a process must die), real TCP on loopback, temp state directories.

mod api;
mod api_matching;
mod audit;
mod backup;
mod cli;
mod crash;
mod dcmtk;
mod dead_letters;
mod dicom;
mod divergence;
mod durability;
mod golden;
mod hostile;
mod hub;
mod hub_pg;
mod interop;
mod layers;
mod logs;
mod malformed;
mod matching;
mod mllp_acks;
mod os_faults;
mod powerloss;
mod rebuild;
mod retention;
mod support;
mod sync;
mod sync_pg;
mod syslog;
mod systemd;
mod tls_api;
mod tls_dicom;
mod tls_mllp;
mod tls_reload;

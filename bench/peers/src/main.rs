//! `knit-bench-peers`: the whole benchmark of `knit-bench` plus the heavy peers (iceoryx2
//! request-response and publish-subscribe, ipc-channel), all measured in one run between the
//! same kind of two processes. Built and run by `scripts/bench`.

mod iceoryx2_pubsub;
mod iceoryx2_rr;
mod ipc;
mod names;

use std::process::ExitCode;

use knit_bench::suite::Suite;

fn main() -> ExitCode {
    // iceoryx2 warns on every node that it runs without a config file: the defaults are meant.
    iceoryx2::prelude::set_log_level(iceoryx2::prelude::LogLevel::Error);
    let suite = Suite::builtin()
        .add_round_trip(iceoryx2_rr::Iceoryx2Rr)
        .add_round_trip(ipc::IpcChannel)
        .add_stream(iceoryx2_pubsub::Iceoryx2PubSub)
        .add_stream(ipc::IpcChannel)
        .add_role(iceoryx2_rr::ROLE, iceoryx2_rr::serve)
        .add_role(iceoryx2_pubsub::ROLE, iceoryx2_pubsub::serve)
        .add_role(ipc::ROLE, ipc::serve);
    knit_bench::cli::main(&suite)
}

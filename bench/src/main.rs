//! `knit-bench`: the default build's benchmark (floors, kernel baselines, Knit). The heavy
//! peers are in `bench/peers` (`scripts/bench` runs that one).

use std::process::ExitCode;

fn main() -> ExitCode {
    knit_bench::cli::main(&knit_bench::suite::Suite::builtin())
}

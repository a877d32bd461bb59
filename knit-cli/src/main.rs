//! `knit`: inspect a region, list the live regions of this host, remove abandoned ones.

mod render;
mod snapshot;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use knit::{Mapping, RegionDir, RegionName};
use knit_core::region::Region;
use serde::Serialize;

/// Knit: same-host shared-memory calls and channels between runtimes.
#[derive(Parser)]
#[command(name = "knit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a region: header, versions, participants and their liveness, ring occupancy,
    /// cancel entries, open channels, poisoned state.
    Inspect {
        /// A region name (`knit-<32 hex>`), or a path to a region image with --file.
        region: String,
        /// Read a region image from a file instead of shared memory.
        #[arg(long)]
        file: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the Knit regions of this host with their owners.
    Ls {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove regions whose every participant is dead (spec MAP-3).
    Gc {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the conformance suite against an implementation's agent (conformance/README.md):
    /// `--agent CMD [--peer CMD] [--case ID] [--list] [--debug] [--report DIR]`.
    #[command(disable_help_flag = true)]
    Conformance {
        /// The runner's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { region, file, json } => inspect(&region, file, json),
        Command::Ls { json } => ls(json),
        Command::Gc { dry_run } => gc(dry_run),
        Command::Conformance { args } => {
            return ExitCode::from(u8::try_from(knit_conformance::cli::run(&args)).unwrap_or(2));
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("knit: {message}");
            ExitCode::FAILURE
        }
    }
}

fn alive(pid: u32, start_time: u64) -> bool {
    knit::is_alive(pid, start_time)
}

/// An 8-aligned private copy of a region image read from a file.
struct Image(Vec<u64>, usize);

impl Image {
    fn read(path: &PathBuf) -> Result<Image, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(b);
        }
        Ok(Image(words, bytes.len()))
    }

    fn shared(&mut self) -> knit_core::SharedMem<'_> {
        let ptr = std::ptr::NonNull::from(self.0.as_mut_slice()).cast::<u8>();
        // SAFETY: the pointer covers `self.1 <= 8 * self.0.len()` bytes of a live, 8-aligned
        // Vec<u64> that this process owns and that is only accessed through the returned
        // view for the borrow of `self`; no other thread or process sees it.
        unsafe { knit_core::SharedMem::new(ptr, self.1) }
    }
}

fn inspect(target: &str, file: bool, json: bool) -> Result<(), String> {
    let print = |region: &Region<'_>| -> Result<(), String> {
        let snap = snapshot::take(region, &alive);
        if json {
            println!("{}", to_json(&snap)?);
        } else {
            print!("{}", render::region(target, &snap));
        }
        Ok(())
    };
    if file {
        let mut image = Image::read(&PathBuf::from(target))?;
        let region = Region::attach(image.shared()).map_err(|e| format!("{target}: {e}"))?;
        return print(&region);
    }
    let mapping = open(target)?;
    let region = Region::attach(mapping.as_shared()).map_err(|e| format!("{target}: {e}"))?;
    print(&region)
}

fn open(name: &str) -> Result<Mapping, String> {
    let name = RegionName::parse(name).map_err(|e| e.to_string())?;
    knit::attach_region(name.as_str(), knit::DEFAULT_ATTACH_TIMEOUT).map_err(|e| e.to_string())
}

fn to_json(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

/// One line of `knit ls`.
#[derive(Serialize)]
struct Listed {
    name: String,
    /// `None` when the region could not be attached; then `error` says why.
    size: Option<usize>,
    host_pid: Option<u32>,
    host_alive: Option<bool>,
    workers_alive: usize,
    worker_slots: u32,
    poisoned: bool,
    abandoned: bool,
    error: Option<String>,
}

fn list() -> Result<Vec<Listed>, String> {
    let names = RegionDir::system().names().map_err(|e| e.to_string())?;
    Ok(names.iter().map(|name| describe(name.as_str())).collect())
}

fn describe(name: &str) -> Listed {
    let mut listed = Listed {
        name: name.to_owned(),
        size: None,
        host_pid: None,
        host_alive: None,
        workers_alive: 0,
        worker_slots: 0,
        poisoned: false,
        abandoned: false,
        error: None,
    };
    let attached = open(name).and_then(|mapping| {
        Region::attach(mapping.as_shared())
            .map(|region| snapshot::take(&region, &alive))
            .map_err(|e| e.to_string())
    });
    match attached {
        Err(e) => listed.error = Some(e),
        Ok(snap) => {
            listed.size = Some(snap.region_len);
            listed.host_pid = snap.participants.first().and_then(|p| p.pid);
            listed.host_alive = snap.participants.first().and_then(|p| p.alive);
            listed.workers_alive = snap
                .participants
                .iter()
                .skip(1)
                .filter(|p| p.alive == Some(true))
                .count();
            listed.worker_slots = snap.geometry.worker_slots;
            listed.poisoned = snap.poison.is_some();
            listed.abandoned = snap.abandoned();
        }
    }
    listed
}

fn ls(json: bool) -> Result<(), String> {
    let regions = list()?;
    if json {
        println!("{}", to_json(&regions)?);
        return Ok(());
    }
    if regions.is_empty() {
        println!("no Knit regions on this host");
    }
    for r in &regions {
        match &r.error {
            Some(e) => println!("{}  unreadable: {e}", r.name),
            None => println!(
                "{}  {} bytes  host pid {} ({})  workers alive {}/{}{}{}",
                r.name,
                r.size.unwrap_or(0),
                r.host_pid.map_or("-".into(), |p| p.to_string()),
                if r.host_alive == Some(true) {
                    "alive"
                } else {
                    "dead"
                },
                r.workers_alive,
                r.worker_slots,
                if r.poisoned { "  POISONED" } else { "" },
                if r.abandoned {
                    "  abandoned (knit gc removes it)"
                } else {
                    ""
                },
            ),
        }
    }
    Ok(())
}

fn gc(dry_run: bool) -> Result<(), String> {
    let mut removed = 0;
    for r in list()? {
        if let Some(e) = &r.error {
            println!(
                "kept {}: unreadable ({e}); remove it by hand if it is yours",
                r.name
            );
            continue;
        }
        if !r.abandoned {
            continue;
        }
        if dry_run {
            println!("would remove {}", r.name);
        } else {
            let name = RegionName::parse(&r.name).map_err(|e| e.to_string())?;
            knit::unlink(&name).map_err(|e| e.to_string())?;
            println!("removed {}", r.name);
        }
        removed += 1;
    }
    println!(
        "{removed} abandoned region(s){}",
        if dry_run { " found" } else { " removed" }
    );
    Ok(())
}

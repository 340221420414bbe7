//! `cargo xtask helper WHAT ...`: the pieces `scripts/lib.sh` takes from the tools for bash
//! scripts (no script in the repository sources it any more), so that PostgreSQL clusters, ports
//! and Debian packages have one implementation. Values go to standard output, progress to
//! standard error, prefixed with the calling script's name (`--as NAME`, first):
//!
//! ```text
//! helper install PACKAGE...          Debian packages, as root or through sudo
//! helper free-port START             the first free port of 127.0.0.1 from START
//! helper pg-bin [--stat-statements]  the PostgreSQL (>= 15) programs' directory, installed if
//!                                    missing (and pg_stat_statements)
//! helper pg-start DIR [throwaway]    starts (creating, or reusing) the cluster in DIR, with the
//!                                    server options of PG_SERVER_OPTIONS; prints
//!                                    PG_PORT=... and PG_DATA_DIR=... for the shell's eval
//! helper pg-stop DIR                 stops the cluster in DIR if it runs
//! helper pg-create-db PORT NAME      creates database NAME on 127.0.0.1:PORT unless it exists
//! ```

use std::path::{Path, PathBuf};

use pg_cluster::{
    Cluster, Mode, Stop, apt_install, ensure_pg_stat_statements, ensure_postgres, free_port,
};

use crate::process::{Failure, Outcome, fail};

pub fn main(args: &[String]) -> Outcome {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let ["--as", name, ..] = args[..] {
        pg_cluster::set_name(name);
        args.drain(..2);
    } else {
        pg_cluster::set_name("helper");
    }
    match args[..] {
        ["install", ref packages @ ..] if !packages.is_empty() => apt_install(packages)?,
        ["free-port", start] => println!("{}", free_port(number(start)?)?),
        ["pg-bin", ref rest @ ..] if rest.len() <= 1 => {
            let bin = ensure_postgres()?;
            match rest {
                [] => {}
                ["--stat-statements"] => ensure_pg_stat_statements(&bin)?,
                _ => return usage(),
            }
            println!("{}", bin.display());
        }
        ["pg-start", dir, ref rest @ ..] if rest.len() <= 1 => {
            let mode = match rest {
                [] => Mode::Persistent,
                ["throwaway"] => Mode::Throwaway,
                _ => return usage(),
            };
            let options = std::env::var("PG_SERVER_OPTIONS").unwrap_or_default();
            let cluster = Cluster::open(&ensure_postgres()?, Path::new(dir), mode, &options)?;
            println!("PG_PORT={}", cluster.port());
            println!(
                "PG_DATA_DIR={}",
                shell_quote(&cluster.data().to_string_lossy())
            );
        }
        ["pg-stop", dir] => {
            // A directory that never held a cluster has nothing to stop.
            if let Ok(data) = std::fs::canonicalize(dir) {
                let log = PathBuf::from(format!("{}.log", data.display()));
                Cluster::new(&ensure_postgres()?, data, log, 0).stop(Stop::Fast)?;
            }
        }
        ["pg-create-db", port, name] => {
            let cluster = Cluster::new(
                &ensure_postgres()?,
                PathBuf::new(),
                PathBuf::new(),
                number(port)?,
            );
            cluster.create_database(name)?;
        }
        _ => return usage(),
    }
    Ok(0)
}

fn usage() -> Outcome {
    fail(
        "usage: cargo xtask helper [--as NAME] install PACKAGE... | free-port START | pg-bin [--stat-statements] | pg-start DIR [throwaway] | pg-stop DIR | pg-create-db PORT NAME (xtask/src/helper.rs)",
    )
}

fn number(text: &str) -> Result<u16, Failure> {
    match text.parse() {
        Ok(port) if port > 0 => Ok(port),
        _ => fail(format!("not a TCP port number (1 to 65535): {text}")),
    }
}

/// `text` as one shell word, in single quotes.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_quoted_path_is_one_shell_word_whatever_it_holds() {
        assert_eq!(super::shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(super::shell_quote("it's"), r"'it'\''s'");
    }
}

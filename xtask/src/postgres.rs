//! The private PostgreSQL server of `up`, `test`, `codegen` and `bench control-plane`: the one
//! implementation in `hdi-test-support` (shared with the e2e tests), plus installing Debian's
//! packages when no server binaries are found.

use anyhow::Context;

pub use hdi_test_support::postgres::{Binaries, Durability, Postgres, ScratchPostgres};

/// Finds the newest installed PostgreSQL, installing Debian's `postgresql` package when none is.
pub fn find_or_install() -> anyhow::Result<Binaries> {
    if let Some(found) = Binaries::find() {
        return Ok(found);
    }
    eprintln!(
        "xtask: PostgreSQL server binaries not found; installing Debian's postgresql package"
    );
    crate::tools::apt_install(&["postgresql"])?;
    Binaries::find()
        .context("PostgreSQL was installed but initdb is still not under /usr/lib/postgresql/*/bin")
}

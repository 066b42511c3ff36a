//! `watchbell store copy --to-postgres`: moves the `SQLite` state (`--db`, else `[daemon]
//! database`) into the empty `PostgreSQL` database the job file's `[store]` names, in one
//! transaction, and says what it copied.

use super::{Cli, Failure, Outcome, database_path};
use crate::config::Config;
use crate::store::pg::{self, Target};

pub fn copy(cli: &Cli, to_postgres: bool) -> Outcome {
    if !to_postgres {
        return Err(Failure::usage(
            "store copy: say where to (--to-postgres: into [store]'s database)",
        ));
    }
    let config = Config::load(&cli.config)?;
    let Some(source) = &config.store else {
        return Err(Failure::usage(format!(
            "{}: no [store] section; add url_env = \"VAR\" or url_file = \"PATH\" naming the PostgreSQL URL",
            cli.config.display()
        )));
    };
    let target = Target::resolve(source).map_err(fail)?;
    let db = database_path(cli, Some(&config));
    if !db.exists() {
        return Err(Failure::usage(format!(
            "no SQLite database at {}: nothing to copy",
            db.display()
        )));
    }
    // A daemon writing while the copy reads would lose what it writes after the snapshot.
    let _lock = crate::store::files::daemon_lock(&db)
        .map_err(|why| Failure::usage(format!("{why}; stop it before copying its state")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    let copied = rt.block_on(async {
        let mut client = pg::connect(&target).await?;
        pg::copy::to_postgres(&db, &mut client, &target).await
    });
    let copied = copied.map_err(fail)?;
    out!(
        "copied {} row(s) from {} to PostgreSQL {target}:",
        copied.rows(),
        db.display()
    );
    for (table, n) in copied.tables.iter().filter(|(_, n)| *n > 0) {
        out!("  {table:<16} {n}");
    }
    Ok(())
}

/// A database failure with the exit code its kind maps to (2: fix the configuration).
pub fn fail(e: pg::PgError) -> Failure {
    Failure {
        code: e.exit_code(),
        message: e.message,
    }
}

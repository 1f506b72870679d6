//! `bestand serve`: runs the scheduler (`bestand_app::schedule`) until SIGTERM or SIGINT, and
//! serves health and Prometheus metrics over HTTP while it does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bestand_app::config::Config;
use bestand_app::schedule::{render_running, run_scheduler, Metrics};
use bestand_app::{Database, Migrations, SystemClock};
use clap::Args;
use sqlx::PgPool;
use tokio::sync::watch;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to serve /health and /metrics.
    #[arg(long, env = "BESTAND_LISTEN", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
}

pub async fn run(args: ServeArgs, config: &Config) -> anyhow::Result<i32> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let metrics = Arc::new(Metrics::default());
    let (shutdown, stopped) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", args.listen))?;
    let http = tokio::spawn(serve_http(
        listener,
        Arc::clone(&metrics),
        database.pool.clone(),
        stopped.clone(),
    ));
    tracing::info!(listen = %args.listen, "bestand serve started");
    eprintln!(
        "bestand serve: health and metrics on http://{}/health and /metrics",
        args.listen
    );
    let scheduler = run_scheduler(
        database.pool.clone(),
        config.clone(),
        Arc::clone(&metrics),
        stopped,
    );
    tokio::pin!(scheduler);
    let outcome = tokio::select! {
        outcome = &mut scheduler => outcome,
        () = termination() => {
            eprintln!("bestand serve: stopping; runs in progress finish first");
            let _ = shutdown.send(true);
            scheduler.await
        }
    };
    let _ = shutdown.send(true);
    let _ = http.await;
    database.close().await?;
    Ok(outcome.map(|()| 0)?)
}

async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    pool: PgPool,
    mut stopped: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_page))
        .with_state((metrics, pool));
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await;
}

/// The scheduler's own figures, plus what only the database knows: runs of any instance that
/// are marked running, and whether they stopped sending heartbeats (their process died).
async fn metrics_page(State((metrics, pool)): State<(Arc<Metrics>, PgPool)>) -> String {
    let mut page = metrics.render();
    let now = bestand_core::Clock::now(&SystemClock);
    // The metrics page is the whole installation's, like the scheduler that serves it.
    let scope = super::scope();
    if let Ok(running) = bestand_core::store::runs::running_runs(&pool, &scope, now).await {
        page.push_str(&render_running(&running));
    }
    page
}

async fn health(State((_, pool)): State<(Arc<Metrics>, PgPool)>) -> (StatusCode, &'static str) {
    match sqlx::query("select 1").execute(&pool).await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n"),
    }
}

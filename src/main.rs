//! The `mcpstorm` binary: parse, run, exit with the verdict's code.

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            mcpstorm::errln!("mcpstorm: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let code = runtime.block_on(mcpstorm::cli::main_with_args(std::env::args_os()));
    // Don't wait for stray blocking tasks (a stdin reader in serve --stdio) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::ExitCode::from(code)
}

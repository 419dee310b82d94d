pub async fn run(_a: crate::cli::LogsArgs) -> color_eyre::eyre::Result<()> {
    Ok(())
}

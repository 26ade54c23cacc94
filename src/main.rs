use clap::Parser;

fn main() {
    let cli = bamdp::cli::Cli::parse();
    if let Err(e) = bamdp::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

# Heroku sources this file at dyno start (release phase included): the Rust buildpack leaves the
# binary in target/release, and the Procfile calls it as plain `mole`.
export PATH="$HOME/target/release:$PATH"

//! The shell-word lexer: BuildKit's `ProcessWord` / `ProcessWords` semantics (to be filled in).

//! Heredoc recognition on `RUN`, `COPY` and `ADD` (to be filled in).

//! Parser directives (`syntax`, `escape`, `check`) at the top of a Dockerfile (to be filled in).

//! The plain HTTP/1.1 listener (`--http HOST:PORT`), built on hyper.

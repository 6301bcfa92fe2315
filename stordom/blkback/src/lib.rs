//! stordom's blkback engine (stordom/DESIGN.md): being built.
#![no_std]

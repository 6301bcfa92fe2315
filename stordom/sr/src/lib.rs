//! stordom's storage repository (stordom/DESIGN.md): being built.
#![no_std]

//! OpenJPEG's C API as the JPEG2000 encoder ([`super::jp2`]) uses it: the declarations shared
//! with the JPEG2000 source live in [`crate::openjpeg`].

pub(crate) use crate::openjpeg::*;

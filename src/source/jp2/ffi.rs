//! OpenJPEG's C API as the decoder uses it: the declarations shared with the JPEG2000 encoder
//! live in [`crate::openjpeg`].

pub(crate) use crate::openjpeg::*;

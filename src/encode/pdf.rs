//! PDF output (an IIIF extension, `application/pdf`): one page showing the image, written
//! with `pdf-writer` (typst's low-level PDF writer).
//!
//! The image is the JPEG of [`super::jpeg`] (same quality and metadata markers), embedded
//! unchanged as an image XObject with the `DCTDecode` filter: a grey JPEG (1 or 2 channels,
//! alpha dropped) as `DeviceGray`, a colour one (3 or 4 channels) as `DeviceRGB`. The page
//! is exactly the image:
//!
//! ```text
//! page width  = pixels × 72 / dpi   (in PDF points, 1/72 inch)
//! dpi         = the image's resolution (per inch, or per cm × 2.54), else 72
//! ```
//!
//! PDF viewers handle pages of at most 14 400 units a side (ISO 32000-1, annex C); a larger
//! page is written in units of `UserUnit` = ⌈side / 14 400⌉ points (PDF 1.6), so its physical
//! size stays right. Document information: `Producer` [`super::SOFTWARE`], and `Title`,
//! `Author`, `Subject` from the image's title, creator and description metadata.
//!
//! Limits: the JPEG buffer (libjpeg-turbo reserves its worst-case size, about 3 bytes per
//! pixel) and the PDF copy of it are held at once, so images above [`MAX_PDF_PIXELS`] are
//! refused before encoding, as are sides above JPEG's 65 535.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, TextStr};

use super::jpeg::JpegEncoder;
use super::{Accepts, EncodeError, EncodeOptions, Encoder, OutputFormat, ResolutionUnit};
use crate::error::Result;
use crate::image::RawImage;

/// Largest PDF written, in pixels (e.g. 10 000²): at most about 600 MB of JPEG buffers.
pub const MAX_PDF_PIXELS: u64 = 100_000_000;

/// JPEG's largest side.
const MAX_JPEG_SIDE: u32 = 65535;

/// Largest page side in default user units that viewers accept (ISO 32000-1, annex C).
const MAX_PAGE_UNITS: f64 = 14_400.0;

/// PDF points per inch.
const POINTS_PER_INCH: f64 = 72.0;

/// PDF encoder: a one-page PDF around the JPEG of the image (8-bit, 1–4 channels).
#[derive(Debug, Clone, Copy, Default)]
pub struct PdfEncoder;

impl Encoder for PdfEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Pdf
    }

    fn accepts(&self) -> Accepts {
        JpegEncoder.accepts()
    }

    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        let (w, h) = (image.width, image.height);
        if w > MAX_JPEG_SIDE || h > MAX_JPEG_SIDE || w as u64 * h as u64 > MAX_PDF_PIXELS {
            return Err(EncodeError::OverLimit {
                format: OutputFormat::Pdf,
                width: w,
                height: h,
            }
            .into());
        }
        let jpeg = JpegEncoder.encode(image, options)?;
        Ok(wrap(&jpeg, w, h, image.channels <= 2, options))
    }
}

/// The page size in points for `w` × `h` pixels at the image's resolution (72 dpi without).
pub fn page_size(w: u32, h: u32, options: &EncodeOptions<'_>) -> (f64, f64) {
    let dpi = options.resolution.and_then(|r| {
        let per_inch = match r.unit {
            ResolutionUnit::Inch => 1.0,
            ResolutionUnit::Centimetre => 2.54,
            ResolutionUnit::Unknown => return None,
        };
        let (x, y) = (r.x * per_inch, r.y * per_inch);
        (x.is_finite() && y.is_finite() && x > 0.0 && y > 0.0).then_some((x, y))
    });
    let (dx, dy) = dpi.unwrap_or((POINTS_PER_INCH, POINTS_PER_INCH));
    (
        w as f64 * POINTS_PER_INCH / dx,
        h as f64 * POINTS_PER_INCH / dy,
    )
}

/// The PDF around a JPEG stream of `w` × `h` pixels.
fn wrap(jpeg: &[u8], w: u32, h: u32, grey: bool, options: &EncodeOptions<'_>) -> Vec<u8> {
    let (catalog, pages, page, image, content, info) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
    );
    let image_name = Name(b"Im1");
    let (pw, ph) = page_size(w, h, options);
    let unit = (pw.max(ph) / MAX_PAGE_UNITS).ceil().max(1.0);
    let (pw, ph) = ((pw / unit) as f32, (ph / unit) as f32);

    let mut pdf = Pdf::with_capacity(jpeg.len() + 4096);
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    {
        let mut p = pdf.page(page);
        p.parent(pages)
            .media_box(Rect::new(0.0, 0.0, pw, ph))
            .contents(content);
        if unit > 1.0 {
            p.pair(Name(b"UserUnit"), unit as f32);
        }
        p.resources().x_objects().pair(image_name, image);
        p.finish();
    }
    {
        let mut x = pdf.image_xobject(image, jpeg);
        x.filter(Filter::DctDecode);
        x.width(w as i32);
        x.height(h as i32);
        if grey {
            x.color_space().device_gray();
        } else {
            x.color_space().device_rgb();
        }
        x.bits_per_component(8);
        x.finish();
    }
    let mut c = Content::new();
    c.save_state();
    c.transform([pw, 0.0, 0.0, ph, 0.0, 0.0]);
    c.x_object(image_name);
    c.restore_state();
    let stream = c.finish();
    pdf.stream(content, &stream);
    {
        let mut d = pdf.document_info(info);
        d.producer(TextStr(super::SOFTWARE));
        if let Some(t) = options.text_value("title") {
            d.title(TextStr(t));
        }
        if let Some(a) = options.text_value("creator") {
            d.author(TextStr(a));
        }
        if let Some(s) = options.text_value("description") {
            d.subject(TextStr(s));
        }
        d.finish();
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::test_util::gradient;
    use crate::encode::{Resolution, ResolutionUnit};
    use crate::image::{ColourSpace, Samples};
    use std::process::Command;

    /// Runs a poppler-utils tool (Debian's `poppler-utils`, in .ci/debian-packages) on the PDF.
    fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pdf");
        std::fs::write(&path, pdf).unwrap();
        let out = Command::new(tool)
            .args(args)
            .arg(&path)
            .args(if tool == "pdfimages" && args.contains(&"-j") {
                vec![dir.path().join("img").into_os_string()]
            } else {
                vec![]
            })
            .output()
            .unwrap_or_else(|e| panic!("{tool} (poppler-utils) must be installed: {e}"));
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), dir)
    }

    fn info_field(info: &str, key: &str) -> String {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {key} in {info}"))
    }

    #[test]
    fn embeds_the_jpeg_unchanged_on_a_72_dpi_page() {
        let img = gradient(120, 80, 3);
        let options = EncodeOptions {
            quality: 80,
            text: vec![("title", "A title".into())],
            ..EncodeOptions::default()
        };
        let pdf = PdfEncoder.encode(&img, &options).unwrap();
        assert!(pdf.starts_with(b"%PDF-1.7"));
        let (info, _) = poppler("pdfinfo", &[], &pdf);
        assert_eq!(info_field(&info, "Pages:"), "1");
        assert!(
            info_field(&info, "Page size:").starts_with("120 x 80 pts"),
            "{info}"
        );
        assert_eq!(info_field(&info, "Title:"), "A title");
        assert_eq!(info_field(&info, "Producer:"), super::super::SOFTWARE);
        let (list, _) = poppler("pdfimages", &["-list"], &pdf);
        let row: Vec<&str> = list.lines().nth(2).unwrap().split_whitespace().collect();
        // page num type width height color comp bpc enc
        assert_eq!(&row[3..9], ["120", "80", "rgb", "3", "8", "jpeg"], "{list}");
        let (_, dir) = poppler("pdfimages", &["-j"], &pdf);
        let extracted = std::fs::read(dir.path().join("img-000.jpg")).unwrap();
        assert_eq!(extracted, JpegEncoder.encode(&img, &options).unwrap());
    }

    #[test]
    fn grey_images_are_device_gray() {
        for ch in [1, 2] {
            let img = gradient(30, 20, ch);
            let pdf = PdfEncoder.encode(&img, &EncodeOptions::default()).unwrap();
            let (list, _) = poppler("pdfimages", &["-list"], &pdf);
            let row: Vec<&str> = list.lines().nth(2).unwrap().split_whitespace().collect();
            assert_eq!(&row[5..7], ["gray", "1"], "{ch} channels: {list}");
        }
    }

    #[test]
    fn page_size_follows_the_resolution() {
        let img = gradient(300, 150, 3);
        let options = EncodeOptions {
            resolution: Some(Resolution {
                x: 300.0,
                y: 150.0,
                unit: ResolutionUnit::Inch,
            }),
            ..EncodeOptions::default()
        };
        // 300 px at 300 dpi = 1 inch = 72 pt; 150 px at 150 dpi = 72 pt.
        let (info, _) = poppler("pdfinfo", &[], &PdfEncoder.encode(&img, &options).unwrap());
        assert!(
            info_field(&info, "Page size:").starts_with("72 x 72 pts"),
            "{info}"
        );
        let cm = Resolution {
            x: 100.0,
            y: 100.0,
            unit: ResolutionUnit::Centimetre,
        };
        let (w, _) = page_size(
            254,
            1,
            &EncodeOptions {
                resolution: Some(cm),
                ..EncodeOptions::default()
            },
        );
        assert!((w - 72.0).abs() < 1e-9);
        let unknown = Resolution {
            x: 3.0,
            y: 1.0,
            unit: ResolutionUnit::Unknown,
        };
        let size = page_size(
            10,
            20,
            &EncodeOptions {
                resolution: Some(unknown),
                ..EncodeOptions::default()
            },
        );
        assert_eq!(size, (10.0, 20.0));
    }

    #[test]
    fn large_pages_use_a_user_unit() {
        // 20 000 px at 72 dpi: 20 000 pt, above 14 400: UserUnit 2, MediaBox 10 000.
        let img = RawImage::from_u8(20_000, 1, 1, ColourSpace::Grey, vec![128; 20_000]);
        let pdf = PdfEncoder.encode(&img, &EncodeOptions::default()).unwrap();
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("/UserUnit 2"), "no UserUnit");
        let (info, _) = poppler("pdfinfo", &[], &pdf);
        assert!(
            info_field(&info, "Page size:").starts_with("10000 x 0.5 pts"),
            "{info}"
        );
    }

    #[test]
    fn refuses_sizes_above_the_limits_before_encoding() {
        for (w, h) in [(70_000, 1), (12_000, 12_000)] {
            let img = RawImage {
                width: w,
                height: h,
                channels: 3,
                bits_per_sample: 8,
                colour: ColourSpace::Srgb,
                // Never read: the size check comes first.
                samples: Samples::U8(Vec::new()),
            };
            let e = PdfEncoder
                .encode(&img, &EncodeOptions::default())
                .unwrap_err();
            assert_eq!(e.kind(), Some(crate::error::ErrorKind::TooLarge), "{w}x{h}");
        }
    }
}

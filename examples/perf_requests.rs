//! Runs the requests of one benchmark scenario in-process, through the same entry the
//! transports use (`protocols::respond`), so that a profiler sees exactly one kind of request
//! (docs/performance.md, "Instruction counts per request"). Meant for
//! `valgrind --tool=callgrind`, which counts instructions whatever else loads the machine:
//!
//! ```sh
//! cargo build --release --example perf_requests
//! valgrind --tool=callgrind target/release/examples/perf_requests SCENARIO 1 # set-up alone
//! valgrind --tool=callgrind target/release/examples/perf_requests SCENARIO 21
//! ```
//!
//! The difference of the two instruction totals divided by 20 is the cost of one request
//! (the first request of every run opens the image and is part of the set-up). Every thread is
//! counted (rayon's included). `perf_requests list` prints the scenarios;
//! `perf_requests SCENARIO N print` prints the N query strings instead of running them (so
//! that another server can be sent the same requests: `examples/bench/bound.sh`).
//!
//! The images are the benchmark's (`examples/bench/lib.sh`, made once in `BENCH_DIR`, default
//! `/tmp/iipsrv-bench`): `big.tif` (16384×12288, 256² JPEG Q90 tiles), `tex5003.jp2` (256²
//! codestream tiles), `tex5003-untiled.jp2` (precincts) and `tex5003.jpg`. Requests are drawn
//! from the same distributions as the scripts' (seeded here, so every run asks for the same
//! ones). The server settings are the benchmark's (tile cache off, no memcached); environment
//! variables of the server (e.g. `CODEC_PASSTHROUGH=0`) are read as the server reads them.
use iipsrv::config::Config;
use iipsrv::http::Request;
use iipsrv::shared::Shared;

/// A seeded LCG, so that every run asks for the same requests.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n.max(1) as u64) as u32
    }

    fn unit(&mut self) -> f64 {
        self.below(1 << 24) as f64 / (1u64 << 24) as f64
    }
}

/// The seed of every run's requests.
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

const BIG: (u32, u32) = (16384, 12288);
const TEX: (u32, u32) = (5003, 3701);

/// IIIF regions of `min`–`max` full-resolution pixels at a random place, `out` wide.
fn region(r: &mut Lcg, img: &str, (iw, ih): (u32, u32), min: u32, max: u32, out: u32) -> String {
    let w = (min + r.below(max - min + 1)).min(iw);
    let h = (min + r.below(max - min + 1)).min(ih);
    let (x, y) = (r.below(iw - w + 1), r.below(ih - h + 1));
    format!("IIIF={img}/{x},{y},{w},{h}/{out},/0/default.jpg")
}

/// The request string of request `i` of `scenario`; `None` for an unknown scenario.
fn request(scenario: &str, r: &mut Lcg) -> Option<String> {
    Some(match scenario {
        "iiif-region" => region(r, "big.tif", BIG, 1000, 4000, 512),
        "thumb200" => "IIIF=big.tif/full/!200,200/0/default.jpg".into(),
        "thumb120" => "IIIF=big.tif/full/,120/0/default.jpg".into(),
        "cvt-whole" => "FIF=big.tif&WID=1000&CVT=jpeg".into(),
        "cvt-region" => {
            let w = 0.0625 + r.unit() * 0.1875;
            let h = 0.0625 + r.unit() * 0.1875;
            let (x, y) = (r.unit() * (1.0 - w), r.unit() * (1.0 - h));
            format!("FIF=big.tif&RGN={x:.4},{y:.4},{w:.4},{h:.4}&WID=1000&CVT=jpeg")
        }
        "jtl" => format!("FIF=big.tif&JTL=6,{}", r.below(64 * 48)),
        "wtl" => format!("FIF=big.tif&WTL=6,{}", r.below(64 * 48)),
        "ptl" => format!("FIF=big.tif&PTL=6,{}", r.below(64 * 48)),
        "jp2-tile" => format!("FIF=tex5003.jp2&JTL=5,{}", r.below(20 * 15)),
        "jp2-region" => region(r, "tex5003.jp2", TEX, 1000, 3000, 512),
        "jp2-thumb200" => "IIIF=tex5003.jp2/full/!200,200/0/default.jpg".into(),
        "jp2u-tile" => format!("FIF=tex5003-untiled.jp2&JTL=5,{}", r.below(20 * 15)),
        "jp2u-region" => region(r, "tex5003-untiled.jp2", TEX, 1000, 3000, 512),
        "jpg-tile" => format!("FIF=tex5003.jpg&JTL=5,{}", r.below(20 * 15)),
        "jpg-region" => region(r, "tex5003.jpg", TEX, 1000, 3000, 512),
        _ => return None,
    })
}

const SCENARIOS: &[&str] = &[
    "iiif-region",
    "thumb200",
    "thumb120",
    "cvt-whole",
    "cvt-region",
    "jtl",
    "wtl",
    "ptl",
    "jp2-tile",
    "jp2-region",
    "jp2-thumb200",
    "jp2u-tile",
    "jp2u-region",
    "jpg-tile",
    "jpg-region",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "list".into());
    if scenario == "list" || request(&scenario, &mut Lcg(1)).is_none() {
        println!("scenarios: {}", SCENARIOS.join(" "));
        return;
    }
    let n: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(21);
    if args.next().as_deref() == Some("print") {
        let mut lcg = Lcg(SEED);
        for _ in 0..n {
            println!("{}", request(&scenario, &mut lcg).expect("known scenario"));
        }
        return;
    }
    let dir = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp/iipsrv-bench".into());
    let (config, _) = Config::from_lookup(|name| match name {
        "FILESYSTEM_PREFIX" => Some(format!("{dir}/")),
        "MAX_IMAGE_CACHE_SIZE" => std::env::var(name).ok().or(Some("0".into())),
        "MEMCACHED_SERVERS" => Some(String::new()),
        "LOGFILE" => Some("/dev/null".into()),
        _ => std::env::var(name).ok(),
    });
    let shared = Shared::new(config);
    let mut lcg = Lcg(SEED);
    let mut bytes = 0usize;
    for i in 0..n {
        let query = request(&scenario, &mut lcg).expect("known scenario");
        let req = Request::from_pairs([("REQUEST_METHOD", "GET"), ("QUERY_STRING", &query)]);
        let response = iipsrv::protocols::respond(&shared, &req);
        let body = response.body.len();
        if response.status() != 200 || body == 0 {
            eprintln!("request {i} ({query}): status {}", response.status());
            std::process::exit(1);
        }
        bytes += body;
    }
    println!("{scenario}: {n} requests, {bytes} bytes");
}

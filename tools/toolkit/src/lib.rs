//! What recstore's tools share (`tools/crash`, `tools/shoppersim`): a
//! JSON-over-HTTP [`Client`] for a running server and a seeded [`Rng`].
//! The tools talk to recstore only through its public HTTP API, never
//! through the library: they check it from the outside, as a user would.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// A client for one server, with an optional API key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
}

impl Client {
    /// `url` like `http://127.0.0.1:7720` (a trailing `/` is dropped).
    pub fn new(url: &str, key: Option<String>) -> Client {
        Client::with(reqwest::Client::new(), url, key)
    }

    /// Over a configured `reqwest` client (pool sizes, timeouts).
    pub fn with(http: reqwest::Client, url: &str, key: Option<String>) -> Client {
        Client {
            http,
            url: url.trim_end_matches('/').to_string(),
            key,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one request; the answer's status and JSON body (`Null` when
    /// empty or not JSON). An error only when no answer came: the caller
    /// tells a dead server from a refusal.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// [`Client::send`], and any status but 2xx is an error naming the
    /// request and the server's answer.
    pub async fn must(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self
            .send(method.clone(), path, body)
            .await
            .with_context(|| format!("{method} {path}"))?;
        if !(200..300).contains(&status) {
            bail!("{method} {path} answered {status}: {value}");
        }
        Ok(value)
    }

    /// Polls `/readyz` until it answers 200, at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = self.send(reqwest::Method::GET, "/readyz", None).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within {timeout:?}", self.url);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast, and good enough
/// for test data; the same seed gives the same run on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for one labelled part of a run (a worker, a shopper),
    /// independent of the others under the same seed.
    pub fn derive(seed: u64, label: u64) -> Rng {
        let mut r = Rng(seed ^ label.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// `dim` values uniform in [-1, 1).
    pub fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| (self.unit() * 2.0 - 1.0) as f32).collect()
    }

    /// A random unit vector (uniform on the sphere).
    pub fn direction(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f64> = (0..dim).map(|_| self.normal()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v.iter().map(|x| (x / norm) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn draws_are_seeded_and_in_range() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::derive(3, 1).next_u64(), Rng::derive(3, 2).next_u64());
        let mut r = Rng::new(9);
        let mut mean = 0.0;
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(7) < 7);
            assert!(r.vector(4).iter().all(|x| (-1.0..1.0).contains(x)));
            mean += r.normal() / 10_000.0;
        }
        assert!(mean.abs() < 0.05, "{mean}");
        let d = r.direction(16);
        let norm: f32 = d.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

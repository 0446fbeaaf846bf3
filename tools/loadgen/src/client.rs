//! One keep-alive HTTP/1.1 connection per worker, on hyper's low-level
//! client: no pool, no per-request allocation beyond the body, so the
//! client spends as little as it can of the CPU it shares with the server.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The server's address, checked to be on this machine.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

impl Target {
    /// Parses `http://HOST:PORT` and refuses anything but loopback: this
    /// tool floods whatever it is pointed at.
    pub fn parse(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("http://")
            .context("--url must start with http:// (TLS is not supported)")?;
        let authority = rest.split('/').next().unwrap_or("");
        let addr: SocketAddr = match authority.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}").parse(),
            None => authority.parse(),
        }
        .with_context(|| format!("--url {url:?}: expected http://127.0.0.1:PORT"))?;
        if !addr.ip().is_loopback() {
            bail!("--url {url:?} is not a loopback address; the load generator only targets this machine");
        }
        Ok(Target {
            addr,
            host: authority.to_string(),
        })
    }
}

/// What one request returned.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub server_timing: Option<String>,
}

/// A worker's connection; reconnects after an error.
pub struct Connection {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub fn new(target: Target) -> Connection {
        Connection {
            target,
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream =
                tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(self.target.addr))
                    .await
                    .context("connecting: timed out")?
                    .with_context(|| format!("connecting to {}", self.target.addr))?;
            stream.set_nodelay(true)?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // Ends when the connection closes; errors show up on the
                // next request.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }

    /// Sends one request; `body` is JSON (`None`: a GET).
    pub async fn send(&mut self, method: &str, path: &str, body: Option<Bytes>) -> Result<Answer> {
        let host = self.target.host.clone();
        let sender = self.connect().await?;
        sender.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        let result = async {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let server_timing = response
                .headers()
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer {
                status,
                body,
                server_timing,
            })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

//! A small RESP client: one connection, commands and pipelines, every wait bounded.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use holo_resp::{Frame, RespCodec};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// One RESP connection.
pub struct Client {
    framed: Framed<TcpStream, RespCodec>,
    addr: String,
}

/// Why a command produced no reply.
#[derive(Debug)]
pub enum CallError {
    /// No reply within the deadline; the connection is no longer usable.
    Timeout,
    /// The connection broke (reset, closed, protocol error); no longer usable.
    Io(std::io::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => f.write_str("timeout"),
            CallError::Io(e) => write!(f, "connection: {e}"),
        }
    }
}

impl Client {
    /// Connects with a deadline.
    pub async fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Client> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: no answer within {timeout:?}"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            framed: Framed::new(stream, RespCodec::default()),
            addr: addr.to_string(),
        })
    }

    /// The address this client is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command without waiting for the reply.
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), CallError> {
        let frame = Frame::command(args.iter().map(|a| Bytes::copy_from_slice(a.as_ref())));
        self.framed
            .send(frame)
            .await
            .map_err(|e| CallError::Io(std::io::Error::other(e)))
    }

    /// Sends one command and waits for its reply.
    pub async fn call<A: AsRef<[u8]>>(
        &mut self,
        args: &[A],
        timeout: Duration,
    ) -> Result<Frame, CallError> {
        let mut replies = self.pipeline(std::slice::from_ref(&args), timeout).await?;
        Ok(replies.remove(0))
    }

    /// Sends every command, then reads every reply, all within `timeout`.
    pub async fn pipeline<A: AsRef<[u8]>, C: AsRef<[A]>>(
        &mut self,
        commands: &[C],
        timeout: Duration,
    ) -> Result<Vec<Frame>, CallError> {
        Ok(self
            .pipeline_timed(commands, timeout)
            .await?
            .into_iter()
            .map(|(frame, _)| frame)
            .collect())
    }

    /// As [`Client::pipeline`], with the moment each reply was read.
    pub async fn pipeline_timed<A: AsRef<[u8]>, C: AsRef<[A]>>(
        &mut self,
        commands: &[C],
        timeout: Duration,
    ) -> Result<Vec<(Frame, Instant)>, CallError> {
        let work = async {
            for args in commands {
                let frame = Frame::command(
                    args.as_ref()
                        .iter()
                        .map(|a| Bytes::copy_from_slice(a.as_ref())),
                );
                self.framed
                    .feed(frame)
                    .await
                    .map_err(|e| CallError::Io(std::io::Error::other(e)))?;
            }
            SinkExt::<Frame>::flush(&mut self.framed)
                .await
                .map_err(|e| CallError::Io(std::io::Error::other(e)))?;
            let mut replies = Vec::with_capacity(commands.len());
            for _ in commands {
                match self.framed.next().await {
                    Some(Ok(frame)) => replies.push((frame, Instant::now())),
                    Some(Err(e)) => return Err(CallError::Io(std::io::Error::other(e))),
                    None => {
                        return Err(CallError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
            Ok(replies)
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(CallError::Timeout))
    }
}

/// The text of a bulk or simple string reply, `None` for nil; an error for anything else.
pub fn string_reply(frame: &Frame) -> anyhow::Result<Option<String>> {
    match frame {
        Frame::Null => Ok(None),
        Frame::Bulk(b) | Frame::Simple(b) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
        Frame::Error(e) | Frame::BulkError(e) => bail!("{}", String::from_utf8_lossy(e)),
        other => bail!("unexpected reply {other:?}"),
    }
}

/// Polls `PING` at `addr` until it answers `PONG` or the deadline passes.
pub async fn wait_pong(addr: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match Client::connect(addr, Duration::from_secs(1)).await {
            Ok(mut c) => match c.call(&["PING"], Duration::from_secs(1)).await {
                Ok(Frame::Simple(s)) if s.as_ref() == b"PONG" => return Ok(()),
                Ok(other) => last = format!("{other:?}"),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{addr} does not answer PING after {within:?} (last: {last})")
}

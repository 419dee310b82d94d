//! A lingering close for the HTTP surface (nginx's `lingering_close`). A request refused
//! before its body was read (413) is answered at once and its connection closed; a client
//! still sending that body would then get a reset from the kernel, which throws away the
//! answer it had not read yet. So on a connection marked by its [`LingerFlag`], once the
//! server has closed its side, what the client still sends is read and thrown away, for at
//! most [`LINGER`] and [`LINGER_BYTES`], before the connection is closed for good. Other
//! connections close as usual.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Longest a closed connection is drained.
pub const LINGER: Duration = Duration::from_secs(2);
/// Most bytes a closed connection is drained of.
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// Wraps a listener so that each of its connections can close lingering.
pub struct Lingering<L>(pub L);

/// Marks one connection to close lingering. Handlers reach it as
/// `ConnectInfo<LingerFlag>` when the router is served with
/// `into_make_service_with_connect_info::<LingerFlag>()` over a [`Lingering`] listener.
#[derive(Clone, Default)]
pub struct LingerFlag(Arc<AtomicBool>);

impl LingerFlag {
    /// The connection lingers when it closes.
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl<L: axum::serve::Listener>
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Lingering<L>>>
    for LingerFlag
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Lingering<L>>) -> Self {
        stream.io().flag.clone()
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for Lingering<L> {
    type Io = LingerIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.0.accept().await;
        (LingerIo::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection whose shutdown, once its flag is set, first closes the sending side, then
/// drains the receiving side until the client closes, [`LINGER`] passes or
/// [`LINGER_BYTES`] came in.
pub struct LingerIo<IO> {
    inner: IO,
    flag: LingerFlag,
    /// Set once the sending side is shut: the drain's deadline and what it read.
    draining: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<IO> LingerIo<IO> {
    fn new(inner: IO) -> Self {
        LingerIo {
            inner,
            flag: LingerFlag::default(),
            draining: None,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for LingerIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingerIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.flag.is_set() {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        }
        if this.draining.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.draining = Some((Box::pin(tokio::time::sleep(LINGER)), 0));
        }
        let Some((deadline, drained)) = this.draining.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if *drained >= LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                // Closed by the client, or broken: nothing left to wait for.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => *drained = drained.saturating_add(buf.filled().len()),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match deadline.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Ok(())),
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
        }
    }
}

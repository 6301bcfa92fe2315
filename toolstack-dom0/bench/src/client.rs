//! A minimal keep-alive HTTP/1.1 client for JSON-RPC and XML-RPC calls.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

/// One keep-alive connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connects to `host:port`.
    pub fn open(addr: &str) -> std::io::Result<Conn> {
        Conn::open_with_timeout(addr, Duration::from_secs(120))
    }

    /// Connects to `host:port`; a connect or a read taking longer than
    /// `timeout` fails.
    pub fn open_with_timeout(addr: &str, timeout: Duration) -> std::io::Result<Conn> {
        let addr: std::net::SocketAddr = addr
            .parse()
            .map_err(|_| std::io::Error::other("--addr is not IP:PORT"))?;
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(timeout))?;
        Ok(Conn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// POSTs a body; returns the response body.
    pub fn post(&mut self, path: &str, ctype: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v
                        .trim()
                        .parse()
                        .map_err(|_| std::io::Error::other("bad length"))?;
                }
            }
        }
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body)?;
        Ok(body)
    }

    /// A JSON-RPC 2.0 call; an error reply becomes an `Err`.
    pub fn rpc(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let req = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let body = self
            .post("/jsonrpc", "application/json", req.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        match v.get("error") {
            Some(e) if !e.is_null() => Err(e.to_string()),
            _ => Ok(v["result"].clone()),
        }
    }

    /// A JSON-RPC call whose reply is checked but not parsed (so the rate
    /// measures the server, not the client's JSON parser); returns its size.
    pub fn rpc_unparsed(&mut self, method: &str, params: Value) -> std::io::Result<usize> {
        let req = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let reply = self.post("/jsonrpc", "application/json", req.to_string().as_bytes())?;
        if !reply.starts_with(b"{\"jsonrpc\":\"2.0\",\"result\":") {
            return Err(std::io::Error::other("JSON-RPC call failed"));
        }
        Ok(reply.len())
    }

    /// An XML-RPC call with string parameters; returns the raw reply size.
    pub fn xmlrpc(&mut self, method: &str, params: &[&str]) -> std::io::Result<usize> {
        let mut body =
            format!("<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>");
        for p in params {
            body.push_str(&format!(
                "<param><value><string>{p}</string></value></param>"
            ));
        }
        body.push_str("</params></methodCall>");
        let reply = self.post("/", "text/xml", body.as_bytes())?;
        if !reply.windows(7).any(|w| w == b"Success") {
            return Err(std::io::Error::other("XML-RPC call failed"));
        }
        Ok(reply.len())
    }
}

//! What the app and its hashing process say to each other, over the process's standard input
//! and output: length-prefixed binary frames, so a password may hold any byte.
//!
//! A request is `id: u64, kind: u8, password, [stored]`; an answer is `id: u64, kind: u8, text`.
//! Integers are little-endian; each string is a `u32` length, then its UTF-8 bytes.

use std::fmt;
use std::io::{self, Read, Write};

/// The longest string a frame may carry: far above any password (`Password` allows 1,024 bytes)
/// or PHC string, so a longer length is a broken stream, not a big request.
const MAX_STRING_BYTES: u32 = 64 * 1024;

/// An absent stored hash (an unknown user) is written as this length.
const ABSENT: u32 = u32::MAX;

/// What the app asks of the hashing process.
pub enum Request {
    Hash {
        password: String,
    },
    /// `stored` is `None` for an unknown user: a dummy hash is verified instead, and fails.
    Verify {
        password: String,
        stored: Option<String>,
    },
}

/// What the hashing process answers: `Ready` or `Failed` once as it starts, then one of the
/// others for each request.
#[derive(PartialEq, Eq)]
pub enum Answer {
    Ready,
    Hashed(String),
    Verified(bool),
    Failed(String),
}

/// Names the answer without the hash it may carry: an unexpected answer is logged.
impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Ready => f.write_str("Ready"),
            Answer::Hashed(_) => f.write_str("Hashed(..)"),
            Answer::Verified(matches) => write!(f, "Verified({matches})"),
            Answer::Failed(reason) => write!(f, "Failed({reason:?})"),
        }
    }
}

const HASH: u8 = 1;
const VERIFY: u8 = 2;

const READY: u8 = 1;
const HASHED: u8 = 2;
const MATCHES: u8 = 3;
const DOES_NOT_MATCH: u8 = 4;
const FAILED: u8 = 5;

/// A request's frame, whole: a string too long for a frame is an `InvalidInput` error, and
/// nothing is written.
pub fn request_frame(id: u64, request: &Request) -> io::Result<Vec<u8>> {
    let mut frame = id.to_le_bytes().to_vec();
    match request {
        Request::Hash { password } => {
            frame.push(HASH);
            put_string(&mut frame, password)?;
        }
        Request::Verify { password, stored } => {
            frame.push(VERIFY);
            put_string(&mut frame, password)?;
            match stored {
                Some(stored) => put_string(&mut frame, stored)?,
                None => frame.extend_from_slice(&ABSENT.to_le_bytes()),
            }
        }
    }
    Ok(frame)
}

/// The next request, or `None` when the app has closed the stream between frames.
pub fn read_request(input: &mut impl Read) -> io::Result<Option<(u64, Request)>> {
    let Some(id) = read_id(input)? else {
        return Ok(None);
    };
    let request = match read_u8(input)? {
        HASH => Request::Hash {
            password: read_string(input)?,
        },
        VERIFY => Request::Verify {
            password: read_string(input)?,
            stored: match read_u32(input)? {
                ABSENT => None,
                length => Some(read_string_of(input, length)?),
            },
        },
        kind => return Err(broken(format!("unknown request kind {kind}"))),
    };
    Ok(Some((id, request)))
}

/// An answer's frame, whole (see `request_frame`).
pub fn answer_frame(id: u64, answer: &Answer) -> io::Result<Vec<u8>> {
    let (kind, text) = match answer {
        Answer::Ready => (READY, ""),
        Answer::Hashed(phc) => (HASHED, phc.as_str()),
        Answer::Verified(true) => (MATCHES, ""),
        Answer::Verified(false) => (DOES_NOT_MATCH, ""),
        Answer::Failed(reason) => (FAILED, reason.as_str()),
    };
    let mut frame = id.to_le_bytes().to_vec();
    frame.push(kind);
    put_string(&mut frame, text)?;
    Ok(frame)
}

/// Writes a frame and flushes it: the other side waits for it.
pub fn send_frame(out: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    out.write_all(frame)?;
    out.flush()
}

/// The next answer, or `None` when the process has closed the stream between frames.
pub fn read_answer(input: &mut impl Read) -> io::Result<Option<(u64, Answer)>> {
    let Some(id) = read_id(input)? else {
        return Ok(None);
    };
    let kind = read_u8(input)?;
    let text = read_string(input)?;
    let answer = match kind {
        READY => Answer::Ready,
        HASHED => Answer::Hashed(text),
        MATCHES => Answer::Verified(true),
        DOES_NOT_MATCH => Answer::Verified(false),
        FAILED => Answer::Failed(text),
        kind => return Err(broken(format!("unknown answer kind {kind}"))),
    };
    Ok(Some((id, answer)))
}

fn put_string(frame: &mut Vec<u8>, text: &str) -> io::Result<()> {
    let length = u32::try_from(text.len())
        .ok()
        .filter(|&length| length <= MAX_STRING_BYTES)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a string of {} bytes does not fit a frame", text.len()),
            )
        })?;
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(text.as_bytes());
    Ok(())
}

/// A frame's id, or `None` at a clean end of the stream (nothing read).
fn read_id(input: &mut impl Read) -> io::Result<Option<u64>> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        match input.read(&mut bytes[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(Some(u64::from_le_bytes(bytes)))
}

fn read_u8(input: &mut impl Read) -> io::Result<u8> {
    let mut byte = [0u8; 1];
    input.read_exact(&mut byte)?;
    Ok(byte[0])
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_string(input: &mut impl Read) -> io::Result<String> {
    let length = read_u32(input)?;
    read_string_of(input, length)
}

fn read_string_of(input: &mut impl Read, length: u32) -> io::Result<String> {
    if length > MAX_STRING_BYTES {
        return Err(broken(format!("a string of {length} bytes")));
    }
    let mut bytes = vec![0u8; length as usize];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|_| broken("a string that is not UTF-8".into()))
}

fn broken(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("hashing stream: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_cross_the_stream_unchanged() {
        let odd = "a \0 password\nwith ✓ any bytes".to_owned();
        let hash = Request::Hash {
            password: odd.clone(),
        };
        let mut stream = request_frame(7, &hash).unwrap();
        let verify = Request::Verify {
            password: odd.clone(),
            stored: Some("$argon2id$v=19$...".into()),
        };
        stream.extend(request_frame(8, &verify).unwrap());
        let unknown = Request::Verify {
            password: String::new(),
            stored: None,
        };
        stream.extend(request_frame(9, &unknown).unwrap());

        let mut input = stream.as_slice();
        let Some((7, Request::Hash { password })) = read_request(&mut input).unwrap() else {
            panic!("the hash request changed");
        };
        assert_eq!(password, odd);
        let Some((8, Request::Verify { password, stored })) = read_request(&mut input).unwrap()
        else {
            panic!("the verify request changed");
        };
        assert_eq!(
            (password, stored.as_deref()),
            (odd, Some("$argon2id$v=19$..."))
        );
        let Some((9, Request::Verify { stored: None, .. })) = read_request(&mut input).unwrap()
        else {
            panic!("an unknown user's request gained a stored hash");
        };
        assert!(read_request(&mut input).unwrap().is_none(), "a clean end");

        let answers = [
            Answer::Ready,
            Answer::Hashed("$argon2id$v=19$m=19456".into()),
            Answer::Verified(true),
            Answer::Verified(false),
            Answer::Failed("no salt".into()),
        ];
        let mut stream = Vec::new();
        for (id, answer) in answers.iter().enumerate() {
            stream.extend(answer_frame(id as u64, answer).unwrap());
        }
        let mut input = stream.as_slice();
        for (id, answer) in answers.into_iter().enumerate() {
            assert_eq!(read_answer(&mut input).unwrap(), Some((id as u64, answer)));
        }
        assert_eq!(read_answer(&mut input).unwrap(), None);
        let hashed = Answer::Hashed("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        assert_eq!(format!("{hashed:?}"), "Hashed(..)", "a hash in a log line");
    }

    #[test]
    fn a_stream_cut_mid_frame_or_claiming_a_huge_string_is_an_error() {
        let violet = Request::Hash {
            password: "violet".into(),
        };
        let stream = request_frame(1, &violet).unwrap();
        for cut in 1..stream.len() {
            assert!(read_request(&mut &stream[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = 1u64.to_le_bytes().to_vec();
        huge.push(HASH);
        huge.extend_from_slice(&(MAX_STRING_BYTES + 1).to_le_bytes());
        let error = read_request(&mut huge.as_slice()).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_string_too_long_for_a_frame_is_refused_before_anything_is_sent() {
        let stored = "$".repeat(MAX_STRING_BYTES as usize + 1);
        let verify = Request::Verify {
            password: "violet tractor mango".into(),
            stored: Some(stored),
        };
        let error = request_frame(3, &verify).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}

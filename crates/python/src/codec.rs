//! The binary messages between a run and its Python worker processes (see
//! [`crate::procs`]): little-endian, length-prefixed, lossless for every
//! [`Atoms`] (NaN, any key, any string), and private to one run: both ends are
//! this library, so there is no versioning.
//!
//! On the pipe each message is its length (`u64`) followed by its bytes.
//!
//! | message | direction | body |
//! |---|---|---|
//! | setup | to worker | tag 0, worker index, the pickled function payload (bytes) |
//! | chunk | to worker | tag 1, chunk id, items: (index, atoms or counter) |
//! | ready | from worker | tag 2 |
//! | results | from worker | tag 3, chunk id, per item: frames or a failure message |
//! | setup failed | from worker | tag 4, message |

use autopara::{ArrayData, Atoms, Column, Value};

/// Message tags.
pub(crate) const SETUP: u8 = 0;
pub(crate) const CHUNK: u8 = 1;
pub(crate) const READY: u8 = 2;
pub(crate) const RESULTS: u8 = 3;
pub(crate) const SETUP_FAILED: u8 = 4;

/// A message body being built.
#[derive(Default)]
pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn u8(&mut self, x: u8) {
        self.0.push(x);
    }

    pub(crate) fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }

    fn f64(&mut self, x: f64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn data(&mut self, d: &ArrayData) {
        match d {
            ArrayData::Bool(v) => {
                self.u8(0);
                self.u64(v.len() as u64);
                self.0.extend(v.iter().map(|&b| b as u8));
            }
            ArrayData::Int(v) => {
                self.u8(1);
                self.u64(v.len() as u64);
                v.iter().for_each(|&x| self.0.extend_from_slice(&x.to_le_bytes()));
            }
            ArrayData::Float(v) => {
                self.u8(2);
                self.u64(v.len() as u64);
                v.iter().for_each(|&x| self.f64(x));
            }
            ArrayData::Str(v) => {
                self.u8(3);
                self.u64(v.len() as u64);
                v.iter().for_each(|s| self.str(s));
            }
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => {
                self.u8(0);
                self.u8(*b as u8);
            }
            Value::Int(i) => {
                self.u8(1);
                self.0.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(x) => {
                self.u8(2);
                self.f64(*x);
            }
            Value::Str(s) => {
                self.u8(3);
                self.str(s);
            }
            Value::Array { shape, data } => {
                self.u8(4);
                self.u64(shape.len() as u64);
                shape.iter().for_each(|&n| self.u64(n as u64));
                self.data(data);
            }
        }
    }

    pub(crate) fn atoms(&mut self, a: &Atoms) {
        self.bytes(&a.numbers);
        self.u64(a.positions.len() as u64);
        a.positions.iter().flatten().for_each(|&x| self.f64(x));
        a.cell.iter().flatten().for_each(|&x| self.f64(x));
        a.pbc.iter().for_each(|&p| self.u8(p as u8));
        self.u64(a.info.len() as u64);
        for (k, v) in &a.info {
            self.str(k);
            self.value(v);
        }
        self.u64(a.arrays.len() as u64);
        for (k, c) in &a.arrays {
            self.str(k);
            self.u64(c.width as u64);
            self.data(&c.data);
        }
    }
}

/// A message body being read; every read checks the length.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, String>;

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or("truncated message")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "truncated message")?))
    }

    fn f64(&mut self) -> R<f64> {
        self.u64().map(f64::from_bits)
    }

    /// A count of elements of at least `min_size` bytes each, checked against
    /// what is left (so a corrupt count cannot allocate).
    fn count(&mut self, min_size: usize) -> R<usize> {
        let n = self.u64()? as usize;
        if n.saturating_mul(min_size) > self.buf.len() - self.pos {
            return Err("message count exceeds its length".into());
        }
        Ok(n)
    }

    pub(crate) fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.count(1)?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> R<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|e| e.to_string())
    }

    fn data(&mut self) -> R<ArrayData> {
        Ok(match self.u8()? {
            0 => {
                let n = self.count(1)?;
                ArrayData::Bool(self.take(n)?.iter().map(|&b| b != 0).collect())
            }
            1 => {
                let n = self.count(8)?;
                ArrayData::Int((0..n).map(|_| self.u64().map(|x| x as i64)).collect::<R<_>>()?)
            }
            2 => {
                let n = self.count(8)?;
                ArrayData::Float((0..n).map(|_| self.f64()).collect::<R<_>>()?)
            }
            3 => {
                let n = self.count(8)?;
                ArrayData::Str((0..n).map(|_| self.str()).collect::<R<_>>()?)
            }
            t => return Err(format!("bad array tag {t}")),
        })
    }

    fn value(&mut self) -> R<Value> {
        Ok(match self.u8()? {
            0 => Value::Bool(self.u8()? != 0),
            1 => Value::Int(self.u64()? as i64),
            2 => Value::Float(self.f64()?),
            3 => Value::Str(self.str()?),
            4 => {
                let n = self.count(8)?;
                let shape = (0..n).map(|_| self.u64().map(|x| x as usize)).collect::<R<_>>()?;
                Value::Array { shape, data: self.data()? }
            }
            t => return Err(format!("bad value tag {t}")),
        })
    }

    pub(crate) fn atoms(&mut self) -> R<Atoms> {
        let numbers = self.bytes()?.to_vec();
        let n = self.count(24)?;
        let positions = (0..n).map(|_| Ok([self.f64()?, self.f64()?, self.f64()?])).collect::<R<_>>()?;
        let mut cell = [[0.0; 3]; 3];
        for row in &mut cell {
            for x in row.iter_mut() {
                *x = self.f64()?;
            }
        }
        let mut pbc = [false; 3];
        for p in &mut pbc {
            *p = self.u8()? != 0;
        }
        let mut atoms = Atoms { numbers, positions, cell, pbc, ..Default::default() };
        for _ in 0..self.count(10)? {
            let k = self.str()?;
            atoms.info.insert(k, self.value()?);
        }
        for _ in 0..self.count(17)? {
            let k = self.str()?;
            let width = self.u64()? as usize;
            atoms.arrays.insert(k, Column { width, data: self.data()? });
        }
        Ok(atoms)
    }

    /// Fails unless the whole message was read.
    pub(crate) fn end(&self) -> R<()> {
        if self.pos == self.buf.len() { Ok(()) } else { Err("trailing bytes in message".into()) }
    }
}

/// Appends an item's result: tag 0 and frames, or tag 1 and the failure message.
pub(crate) fn enc_result(e: &mut Enc, result: &autopara::ItemResult) {
    match result {
        Ok(frames) => {
            e.u8(0);
            e.u64(frames.len() as u64);
            frames.iter().for_each(|a| e.atoms(a));
        }
        Err(f) => {
            e.u8(1);
            e.str(&f.message);
        }
    }
}

/// Reads an item's result written by [`enc_result`].
pub(crate) fn dec_result(d: &mut Dec<'_>) -> R<autopara::ItemResult> {
    match d.u8()? {
        0 => {
            let n = d.count(1)?;
            Ok(Ok((0..n).map(|_| d.atoms()).collect::<R<_>>()?))
        }
        1 => Ok(Err(autopara::ItemFailure::new(d.str()?))),
        t => Err(format!("bad result tag {t}")),
    }
}

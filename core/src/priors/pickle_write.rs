//! A minimal pickle writer for the official on-disk forms, so that vectors built here can be fed
//! to the official Python code unchanged (`pickle.load` → `dict[str, numpy.ndarray]`).
//!
//! Protocol 3, no memo. Arrays use numpy's own reduction (`numpy.core.multiarray._reconstruct` +
//! `BUILD` with `(1, shape, dtype('f4'), False, raw bytes)`), which numpy 1.x and 2.x both load.

/// Incremental pickle byte writer.
struct Writer {
    out: Vec<u8>,
}

const MARK: u8 = b'(';
const SETITEMS: u8 = b'u';
/// Items per `SETITEMS` batch (as CPython's pickler does).
const BATCH: usize = 1000;

impl Writer {
    fn new() -> Self {
        // PROTO 3, EMPTY_DICT.
        Self {
            out: vec![0x80, 3, b'}'],
        }
    }

    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.out.extend([b'K', v as u8]);
        } else if (0..65536).contains(&v) {
            self.out.push(b'M');
            self.out.extend((v as u16).to_le_bytes());
        } else if i32::try_from(v).is_ok() {
            self.out.push(b'J');
            self.out.extend((v as i32).to_le_bytes());
        } else {
            // LONG1 with 8 little-endian two's-complement bytes.
            self.out.extend([0x8a, 8]);
            self.out.extend(v.to_le_bytes());
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend(name.as_bytes());
        self.out.push(b'\n');
    }

    /// A 1-D little-endian float32 numpy array.
    fn f32_array(&mut self, v: &[f32]) {
        // _reconstruct(ndarray, (0,), b'b')
        self.global("numpy.core.multiarray", "_reconstruct");
        self.global("numpy", "ndarray");
        self.int(0);
        self.out.push(0x85); // TUPLE1
        self.out.extend([b'C', 1, b'b']); // SHORT_BINBYTES b'b'
        self.out.push(0x87); // TUPLE3
        self.out.push(b'R');
        // state = (1, (n,), dtype('f4', False, True) + BUILD state, False, raw)
        self.out.push(MARK);
        self.int(1);
        self.int(v.len() as i64);
        self.out.push(0x85);
        self.global("numpy", "dtype");
        self.str("f4");
        self.out.extend([0x89, 0x88, 0x87, b'R']); // False, True, TUPLE3, REDUCE
        self.out.push(MARK);
        self.int(3);
        self.str("<");
        self.out.extend([b'N', b'N', b'N']);
        self.int(-1);
        self.int(-1);
        self.int(0);
        self.out.extend([b't', b'b']); // TUPLE, BUILD (dtype state)
        self.out.push(0x89); // is_fortran = False
        self.out.push(b'B'); // BINBYTES
        self.out.extend(((v.len() * 4) as u32).to_le_bytes());
        for x in v {
            self.out.extend(x.to_le_bytes());
        }
        self.out.extend([b't', b'b']); // TUPLE, BUILD (array state)
    }

    /// Writes `items` as `SETITEMS` batches, then STOP.
    fn dict<T>(
        mut self,
        items: impl IntoIterator<Item = T>,
        mut put: impl FnMut(&mut Self, T),
    ) -> Vec<u8> {
        let mut n = 0;
        for item in items {
            if n % BATCH == 0 {
                if n > 0 {
                    self.out.push(SETITEMS);
                }
                self.out.push(MARK);
            }
            put(&mut self, item);
            n += 1;
        }
        if n > 0 {
            self.out.push(SETITEMS);
        }
        self.out.push(b'.');
        self.out
    }
}

/// `dict[str → numpy.ndarray(float32, (K,))]`: the official prior file format
/// (`pickle.load` gives `{symbol: array}`); rows of `data` are `width` long, in `keys` order.
pub fn str_f32_array_dict(keys: &[String], width: usize, data: &[f32]) -> Vec<u8> {
    assert_eq!(keys.len() * width, data.len(), "one row of `width` per key");
    Writer::new().dict(keys.iter().enumerate(), |w, (i, k)| {
        w.str(k);
        w.f32_array(&data[i * width..(i + 1) * width]);
    })
}

/// `dict[str → int]` (a token dictionary such as `human_mouse_tokens.pickle`).
pub fn str_int_dict<'a>(items: impl IntoIterator<Item = (&'a str, i64)>) -> Vec<u8> {
    Writer::new().dict(items, |w, (k, v)| {
        w.str(k);
        w.int(v);
    })
}

/// `dict[int → int]` (the homolog map `homologous_hm_token.pickle`: human id → mouse id).
pub fn int_int_dict(items: impl IntoIterator<Item = (i64, i64)>) -> Vec<u8> {
    Writer::new().dict(items, |w, (k, v)| {
        w.int(k);
        w.int(v);
    })
}

/// `dict[str → str]` (`Gene_id_name_dict_human_mouse.pickle`: Ensembl id → symbol).
pub fn str_str_dict<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    Writer::new().dict(items, |w, (k, v)| {
        w.str(k);
        w.str(v);
    })
}

/// Per-species official prior pickles of a built table, plus the id → symbol entries used.
#[derive(Debug, Clone, Default)]
pub struct OfficialPickles {
    /// `dict[symbol → float32 array]` of the human rows.
    pub human: Vec<u8>,
    /// Same for the mouse rows.
    pub mouse: Vec<u8>,
    /// Genes written per species (human, mouse).
    pub counts: (usize, usize),
    /// `(ensembl id, key)` for every gene row: what `Gene_id_name_dict_human_mouse.pickle` must
    /// hold for the official loader to find the rows again.
    pub id_to_symbol: Vec<(String, String)>,
    /// Rows whose symbol was already used by an earlier row (the official dict holds one vector
    /// per symbol, so the loader gives both genes the first one).
    pub duplicate_symbols: usize,
}

/// Splits a table whose rows are Ensembl ids (or vocabulary tokens) into the official
/// per-species symbol-keyed pickles. Symbols come from the embedded HGNC/MGI tables; a gene
/// without a symbol is keyed by its Ensembl id. `<pad>`, `<mask>` and other names are skipped.
pub fn to_official_pickles(v: &super::GeneVectors) -> OfficialPickles {
    use crate::cells::Species;
    use crate::tokenize::GeneTable;
    use crate::tokenize::genes::parse_ensembl;
    let mut out = OfficialPickles::default();
    let mut keys: [Vec<String>; 2] = Default::default();
    let mut data: [Vec<f32>; 2] = Default::default();
    let mut seen = std::collections::HashSet::new();
    for (i, g) in v.genes.iter().enumerate() {
        let Some((id, sp)) = parse_ensembl(g) else {
            continue;
        };
        let s = usize::from(sp == Species::Mouse);
        let symbol = GeneTable::embedded(sp)
            .by_ensembl(id)
            .map(|r| r.symbol.to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| id.to_string());
        out.id_to_symbol.push((g.clone(), symbol.clone()));
        if !seen.insert((s, symbol.clone())) {
            out.duplicate_symbols += 1;
            continue;
        }
        keys[s].push(symbol);
        data[s].extend_from_slice(v.row(i));
    }
    out.counts = (keys[0].len(), keys[1].len());
    out.human = str_f32_array_dict(&keys[0], v.width, &data[0]);
    out.mouse = str_f32_array_dict(&keys[1], v.width, &data[1]);
    out
}

/// Official-style relative file names of a prior `(human, mouse)`, for `n` genes per species.
pub fn official_names(
    kind: super::PriorKind,
    width: usize,
    counts: (usize, usize),
) -> (String, String) {
    use super::PriorKind as K;
    match kind {
        K::Promoter => (
            format!("promoter_emb/human_emb_{width}.pickle"),
            format!("promoter_emb/mouse_emb_{width}.pickle"),
        ),
        K::CoExp => (
            format!(
                "gene_co_express_emb/Human_dim_{width}_gene_{}_random.pickle",
                counts.0
            ),
            format!(
                "gene_co_express_emb/Mouse_dim_{width}_gene_{}_random.pickle",
                counts.1
            ),
        ),
        K::GeneFamily => (
            format!(
                "gene_family/Human_dim_{width}_gene_{}_random.pickle",
                counts.0
            ),
            format!(
                "gene_family/Mouse_dim_{width}_gene_{}_random.pickle",
                counts.1
            ),
        ),
        K::PecaGrn => (
            "PECA2vec/human_PECA_vec.pickle".to_string(),
            "PECA2vec/mouse_PECA_vec.pickle".to_string(),
        ),
    }
}

//! A multi-page blkif ring from pages mapped one by one.
//!
//! blkfront grants a ring of `1 << ring-page-order` pages and the engine
//! wants them as one run. The runtime maps each grant into its own window
//! slot, adjacent or not; [`MultiPage`] joins them behind one
//! [`SharedPage`], splitting every access at the page boundaries. Index
//! words are 4-aligned and never straddle two pages.

use alloc::vec::Vec;

use xcp_ring::SharedPage;

/// One page.
pub const PAGE: usize = 4096;

/// Pages seen as one run, page 0 first.
pub struct MultiPage<P> {
    pages: Vec<P>,
}

impl<P: SharedPage> MultiPage<P> {
    /// The run of `pages`; `None` unless there is at least one and each is
    /// one whole page.
    pub fn new(pages: Vec<P>) -> Option<Self> {
        let whole = !pages.is_empty() && pages.iter().all(|p| p.len() == PAGE);
        whole.then_some(MultiPage { pages })
    }

    /// The pages back (to unmap them).
    pub fn into_pages(self) -> Vec<P> {
        self.pages
    }

    /// Calls `f(page, offset in it, offset in the access, length)` for
    /// each piece of `offset..offset + len`. An access past the run is
    /// cut at its end (the engine never makes one; `SharedPage` has no
    /// error to give).
    fn pieces(&self, offset: usize, len: usize, mut f: impl FnMut(&P, usize, usize, usize)) {
        let mut done = 0;
        while done < len {
            let Some(at) = offset.checked_add(done) else {
                return;
            };
            let Some(page) = self.pages.get(at / PAGE) else {
                return;
            };
            let n = (PAGE - at % PAGE).min(len - done);
            f(page, at % PAGE, done, n);
            done += n;
        }
    }
}

impl<P: SharedPage> SharedPage for MultiPage<P> {
    fn len(&self) -> usize {
        self.pages.len() * PAGE
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        self.pieces(offset, out.len(), |p, at, o, n| {
            if let Some(dst) = out.get_mut(o..o + n) {
                p.read(at, dst);
            }
        });
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.pieces(offset, data.len(), |p, at, o, n| {
            if let Some(src) = data.get(o..o + n) {
                p.write(at, src);
            }
        });
    }
    fn load_u32(&self, offset: usize) -> u32 {
        self.pages
            .get(offset / PAGE)
            .map_or(0, |p| p.load_u32(offset % PAGE))
    }
    fn store_u32(&self, offset: usize, v: u32) {
        if let Some(p) = self.pages.get(offset / PAGE) {
            p.store_u32(offset % PAGE, v);
        }
    }
    fn mb(&self) {
        if let Some(p) = self.pages.first() {
            p.mb();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use xcp_ring::fake::MemPage;

    #[test]
    fn only_whole_pages_make_a_run() {
        assert!(MultiPage::<MemPage>::new(Vec::new()).is_none());
        let run = MultiPage::new(vec![MemPage::new(), MemPage::new()]).expect("run");
        assert_eq!(run.len(), 2 * PAGE);
    }

    #[test]
    fn words_land_in_their_page() {
        let run = MultiPage::new(vec![MemPage::new(), MemPage::new()]).expect("run");
        run.store_u32(PAGE + 8, 0xdead_beef);
        let pages = run.into_pages();
        assert_eq!(pages[1].load_u32(8), 0xdead_beef);
        assert_eq!(pages[0].load_u32(8), 0);
    }

    proptest! {
        /// Writes anywhere in the run, across page boundaries or not, read
        /// back as from one flat buffer, and land in the right pages.
        #[test]
        fn a_run_behaves_as_one_buffer(
            n in 1usize..5,
            writes in proptest::collection::vec((0usize..5 * PAGE, 0usize..3 * PAGE, any::<u8>()), 1..16),
        ) {
            let run = MultiPage::new((0..n).map(|_| MemPage::new()).collect()).expect("run");
            let mut model = vec![0u8; n * PAGE];
            for (offset, len, seed) in writes {
                let offset = offset % (n * PAGE);
                let len = len.min(n * PAGE - offset);
                let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ seed).collect();
                run.write(offset, &data);
                model[offset..offset + len].copy_from_slice(&data);
                let mut back = vec![0u8; len];
                run.read(offset, &mut back);
                prop_assert_eq!(&back, &data);
            }
            let mut all = vec![0u8; n * PAGE];
            run.read(0, &mut all);
            prop_assert_eq!(&all, &model);
            for (i, p) in run.into_pages().iter().enumerate() {
                prop_assert_eq!(&p.snapshot()[..], &model[i * PAGE..(i + 1) * PAGE]);
            }
        }
    }
}

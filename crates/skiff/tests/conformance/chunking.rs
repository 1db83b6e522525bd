//! Servers with support for API chunking: `test/e2e/apimachinery/chunking.go`.

use super::*;

/// chunking.go "should return chunks of results for list calls" (Conformance): 400 pod
/// templates listed three times in pages of random size, each page at the first page's
/// resourceVersion with a true `remainingItemCount`; then all at once.
#[test]
fn chunking_should_return_chunks_of_results_for_list_calls() {
    run(|c| async move {
        const TOTAL: usize = 400;
        let ns = namespace(&c, "cf-chunking").await;
        create_pod_templates(&c, &ns, TOTAL, 20).await;
        let api: Api<PodTemplate> = Api::namespaced(c, &ns);
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..3 {
            let mut found = 0;
            let mut last_rv = String::new();
            let mut token: Option<String> = None;
            loop {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let limit = (rng % (TOTAL as u64 / 10)) as u32 + 1;
                let mut lp = ListParams::default().limit(limit);
                if let Some(t) = &token {
                    lp = lp.continue_token(t);
                }
                let list = api.list(&lp).await.expect("list pod templates");
                assert!(list.items.len() <= limit as usize);
                let rv = list.metadata.resource_version.clone().unwrap_or_default();
                if last_rv.is_empty() {
                    last_rv = rv.clone();
                }
                assert_eq!(
                    rv, last_rv,
                    "every page reports the first page's resourceVersion"
                );
                let more = list.metadata.continue_.clone().filter(|t| !t.is_empty());
                match &more {
                    None => assert_eq!(list.metadata.remaining_item_count, None),
                    Some(_) => {
                        let remaining = list
                            .metadata
                            .remaining_item_count
                            .expect("remainingItemCount on a page with more");
                        assert_eq!(remaining as usize + list.items.len() + found, TOTAL);
                    }
                }
                for item in &list.items {
                    assert_eq!(
                        item.metadata.name.as_deref(),
                        Some(format!("template-{found:04}").as_str())
                    );
                    found += 1;
                }
                match more {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            assert_eq!(found, TOTAL);
        }
        let all = api
            .list(&ListParams::default().limit(TOTAL as u32 + 1))
            .await
            .unwrap();
        assert_eq!(all.items.len(), TOTAL);
    });
}

/// chunking.go "should support continue listing from the last key if the original version has
/// been compacted away, though the list is inconsistent [Slow]" (Conformance). Upstream waits
/// for etcd's periodic compaction; skiff compacts once its history holds more than 20,000
/// revisions, so this test writes that many on a server of its own (the shared server's other
/// tests watch from recent revisions).
#[test]
fn chunking_should_support_continue_listing_from_the_last_key_if_the_original_version_has_been_compacted_away_though_the_list_is_inconsistent(
) {
    static OWN: OnceLock<Server> = OnceLock::new();
    run_on(
        OWN.get_or_init(|| start_server("conformance-compaction")),
        |c| async move {
            const TOTAL: usize = 400;
            let ns = namespace(&c, "cf-chunking-compacted").await;
            create_pod_templates(&c, &ns, TOTAL, 20).await;
            let api: Api<PodTemplate> = Api::namespaced(c.clone(), &ns);
            let remaining_ok = |list: &kube::core::ObjectList<PodTemplate>, found: usize| match list
                .metadata
                .continue_
                .as_deref()
                .filter(|t| !t.is_empty())
            {
                None => assert_eq!(list.metadata.remaining_item_count, None),
                Some(_) => {
                    let remaining = list
                        .metadata
                        .remaining_item_count
                        .expect("remainingItemCount on a page with more");
                    assert_eq!(remaining as usize + list.items.len() + found, TOTAL);
                }
            };

            let one_tenth = (TOTAL / 10) as u32;
            let list = api
                .list(&ListParams::default().limit(one_tenth))
                .await
                .unwrap();
            remaining_ok(&list, 0);
            let first_token = list.metadata.continue_.clone().expect("a continue token");
            let first_rv = list.metadata.resource_version.clone().unwrap();

            // Write until the first page's revision is compacted and the token expires.
            let cms: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
            let uri = format!(
                "/api/v1/namespaces/{ns}/podtemplates?limit={one_tenth}&continue={first_token}"
            );
            let mut written = 0;
            let inconsistent = loop {
                let r = get(&c, &uri).await;
                if r.status == StatusCode::GONE {
                    let status = r.json();
                    assert_eq!(status["reason"], "Expired", "{status}");
                    let token = status["metadata"]["continue"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    assert_ne!(token, "", "expect non empty continue token: {status}");
                    break token;
                }
                ok(&r, "the second page before the token expired");
                assert!(
                    written < 40_000,
                    "the continue token never expired after {written} writes"
                );
                futures::stream::iter(written..written + 2_000)
                    .for_each_concurrent(32, |i| {
                        let cms = cms.clone();
                        async move {
                            let cm: ConfigMap =
                                obj(json!({"metadata": {"name": format!("w-{i}")}}));
                            cms.create(&PostParams::default(), &cm)
                                .await
                                .expect("write");
                        }
                    })
                    .await;
                written += 2_000;
            };

            let lp = ListParams::default()
                .limit(one_tenth)
                .continue_token(&inconsistent);
            let list = api
                .list(&lp)
                .await
                .expect("list with the inconsistent continue token");
            let rv = list.metadata.resource_version.clone().unwrap();
            assert_ne!(rv, first_rv);
            assert_eq!(list.items.len(), one_tenth as usize);
            let mut found = one_tenth as usize;
            remaining_ok(&list, found);
            for item in &list.items {
                assert_eq!(
                    item.metadata.name.as_deref(),
                    Some(format!("template-{found:04}").as_str())
                );
                found += 1;
            }
            let mut token = list.metadata.continue_.clone();
            while let Some(t) = token.filter(|t| !t.is_empty()) {
                let list = api
                    .list(&ListParams::default().limit(one_tenth).continue_token(&t))
                    .await
                    .unwrap();
                remaining_ok(&list, found);
                assert!(list.items.len() <= one_tenth as usize);
                assert_eq!(list.metadata.resource_version.as_deref(), Some(rv.as_str()));
                for item in &list.items {
                    assert_eq!(
                        item.metadata.name.as_deref(),
                        Some(format!("template-{found:04}").as_str())
                    );
                    found += 1;
                }
                token = list.metadata.continue_.clone();
            }
            assert_eq!(found, TOTAL);
        },
    );
}
